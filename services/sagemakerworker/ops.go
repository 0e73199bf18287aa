package sagemakerworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/smithy-go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/sagemakerworker/sm"
)

// Messages of clusters whose job is gone.
const (
	MsgNoJob = "no training job to stop"
	MsgGone  = "the training job no longer exists (it ended and aged out, or was removed outside rh)"
)

// Workloads, the value of the "workload" info key.
const (
	workloadCompute   = "compute-backend"
	workloadEstimator = "estimator"
)

// call is one event being handled.
type call struct {
	s   *Service
	in  *events.ClusterIntent
	sp  *rh.SageMakerSpec
	r   *worker.Reporter
	op  string
	cli *sm.Client
	log *slog.Logger
	// autostopNote says why an autostop change did not reach the running
	// job ("" when it did, or none was asked for).
	autostopNote string
}

// Create launches this generation's training job, or adopts the one an
// earlier attempt (or an earlier generation still running) created, and
// follows it: a compute backend until Training (Up), an estimator to its end.
func (c *call) Create(ctx context.Context) error {
	s, cluster, gen := c.s, c.in.Cluster, c.in.Generation
	var est *sm.Estimator
	if c.sp.Estimator != "" {
		e, err := sm.ParseEstimator([]byte(c.sp.Estimator))
		if err != nil {
			return worker.Permanent(fmt.Errorf("sagemaker.estimator: %w", err))
		}
		est = e
	}
	// Acquire waits while another live sagemakerworker follows this
	// cluster's job and adopts the record of one that died.
	rec, rev, err := s.jobs.Acquire(ctx, cluster)
	if err != nil {
		return err
	}
	if rec != nil && rec.Generation != gen && rec.Job != "" {
		// An `up` after a Failed or Stopped report, or a create whose
		// predecessor's outcome was never reported: if that job still runs,
		// it is this generation's cluster — a second job would double the bill.
		d, err := c.cli.Describe(ctx, rec.Job)
		s.m.APIError("describe", err)
		switch {
		case err == nil && d.Status == sm.JobInProgress:
			rec.Generation = gen
			if rev, err = s.jobs.Save(ctx, cluster, *rec, rev); err != nil {
				return err
			}
			c.log.Info("adopting the training job of an earlier generation, still running", "job", rec.Job)
			s.m.Outcome(outcomeAdopted)
			return c.follow(ctx, rec, rev, time.Now())
		case err == nil || sm.IsNotFound(err):
			rec = nil // ended: this generation gets a job of its own
		default:
			return c.fail(ctx, "describe", err)
		}
	}
	if rec == nil {
		name := c.sp.JobName
		if name == "" {
			name = sm.JobName(cluster, gen)
		}
		// Claim the name before anything reaches AWS, so a crash after the
		// create leaves a trace for the teardown and the next attempt.
		nrec := jobRecord{Generation: gen, Job: name, State: stateLaunching, Estimator: est != nil}
		if rev, err = s.jobs.Save(ctx, cluster, nrec, rev); err != nil {
			if errors.Is(err, worker.ErrLostRace) {
				return fmt.Errorf("another sagemakerworker is creating %s: %w", cluster, err)
			}
			return err
		}
		rec = &nrec
	}
	start := time.Now()
	if rec.State == stateLaunching {
		pub, err := s.ensureKey(ctx, cluster)
		if err != nil {
			return err
		}
		role := c.sp.Role
		if role == "" {
			role = s.cfg.DefaultRole
		}
		role, err = c.cli.ResolveRole(ctx, role)
		if err != nil {
			return c.failRole(ctx, err)
		}
		in, err := sm.BuildCreateInput(c.clusterSpec(role, pub, est, rec.Job))
		if err != nil {
			_ = s.jobs.Delete(context.WithoutCancel(ctx), cluster)
			s.m.Outcome(outcomeFailed)
			return worker.Permanent(fmt.Errorf("cannot express the cluster as a training job: %w", err))
		}
		rec.RoleARN = role
		rec.InstanceType = in.ResourceConfig.InstanceType
		rec.Instances = int(in.ResourceConfig.InstanceCount)
		if err := c.r.Report(ctx, rh.PhaseProvisioning, "creating training job "+rec.Job, nil, c.info(rec, nil)); err != nil {
			c.log.Warn("cannot report Provisioning", "err", err)
		}
		res, err := c.cli.Launch(ctx, in)
		s.m.APIError("create", err)
		if err != nil {
			return c.fail(ctx, "create", err)
		}
		if res.Adopted {
			s.m.Outcome(outcomeAdopted)
		} else {
			s.m.Outcome(outcomeCreated)
		}
		rec.ARN, rec.State = res.ARN, stateLaunched
		if rev, err = s.jobs.Save(ctx, cluster, *rec, rev); err != nil {
			// The job runs; the next attempt adopts it through its name.
			c.log.Warn("training job created but not recorded", "job", rec.Job, "err", err)
		}
	}
	return c.follow(ctx, rec, rev, start)
}

// follow polls the job, reporting each secondary-status transition, until a
// compute backend reaches Training (Up) or the job ends. It holds the event
// (and so the lease) meanwhile; a teardown cancels it.
func (c *call) follow(ctx context.Context, rec *jobRecord, rev uint64, start time.Time) error {
	s := c.s
	seen := c.reportedMessages(ctx)
	next := 0 // transitions reported so far
	wait := s.cfg.PollMin
	missing, failures := 0, 0
	trained := false
	for {
		d, err := c.cli.Describe(ctx, rec.Job)
		s.m.APIError("describe", err)
		switch {
		case err == nil:
			missing, failures = 0, 0
		case ctx.Err() != nil:
			return c.fail(ctx, "describe", err)
		case sm.IsNotFound(err) && missing < 5:
			// DescribeTrainingJob is eventually consistent right after a create.
			missing++
		case sm.IsNotFound(err):
			_ = s.host.Forget(context.WithoutCancel(ctx), c.in.Cluster)
			return worker.Permanent(fmt.Errorf("training job %s disappeared while it was being created", rec.Job))
		case sm.IsRetryable(err) && failures < 10:
			failures++
			c.log.Debug("describe gave no definite answer; polling on", "job", rec.Job, "err", err)
		default:
			return c.fail(ctx, "describe", err)
		}
		if d != nil {
			changed := next < len(d.Transitions)
			for ; next < len(d.Transitions); next++ {
				t := d.Transitions[next]
				if terminalSecondary(t.Status) {
					continue
				}
				msg := transitionMessage(t)
				if t.Status == sm.SecondaryTraining && !trained {
					trained = true
					s.m.Outcome(outcomeTraining)
					s.m.Took(outcomeTraining, start)
				}
				if seen[msg] || c.upNow(rec, d, next) {
					// Reported by an earlier attempt of this generation, or
					// the Up that settle reports below.
					continue
				}
				seen[msg] = true
				if err := c.reportTransition(ctx, rec, d, t, msg); err != nil {
					return err
				}
			}
			done, err := c.settle(ctx, rec, rev, d, trained, start)
			if done || err != nil {
				return err
			}
			if changed {
				wait = s.cfg.PollMin
			}
		}
		if err := sleep(ctx, wait); err != nil {
			return c.fail(ctx, "follow", err)
		}
		wait = min(wait*2, s.cfg.PollMax)
	}
}

// settle decides from the job's status whether following it is over.
func (c *call) settle(ctx context.Context, rec *jobRecord, rev uint64, d *sm.JobDescription, trained bool, start time.Time) (bool, error) {
	s := c.s
	switch d.Status {
	case sm.JobInProgress:
		if c.upNow(rec, d, len(d.Transitions)-1) {
			// Reported even when an earlier attempt did: after a spot
			// interruption the same messages come round again.
			n := len(d.Transitions)
			if err := c.r.Report(ctx, rh.PhaseUp, transitionMessage(d.Transitions[n-1]), c.nodes(rec, d), c.info(rec, d)); err != nil {
				return true, fmt.Errorf("sagemakerworker: report Up: %w", err)
			}
			rec.State = stateUp
			if _, err := s.jobs.Save(ctx, c.in.Cluster, *rec, rev); err != nil {
				// Reported Up already; a redelivery adopts the job instead.
				c.log.Warn("cannot mark the job up", "err", err)
			}
			return true, nil
		}
		return false, nil
	case sm.JobCompleted, sm.JobStopped:
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return true, err
		}
		if neverCameUp(rec, d) {
			s.m.Took(outcomeFailed, start)
			s.m.Outcome(outcomeFailed)
			return true, worker.Permanent(errors.New(neverUpMessage(rec.Job, c.cli.Region(), d)))
		}
		msg := fmt.Sprintf("job completed (training job %s)", rec.Job)
		if d.Status == sm.JobStopped {
			msg = fmt.Sprintf("training job %s stopped: %s", rec.Job, lastMessage(d))
		}
		return true, c.r.Report(ctx, rh.PhaseTerminated, msg, nil, c.info(rec, d))
	case sm.JobFailed:
		if !trained {
			s.m.Took(outcomeFailed, start)
		}
		s.m.Outcome(outcomeFailed)
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return true, err
		}
		reason := d.FailureReason
		if reason == "" {
			reason = lastMessage(d)
		}
		return true, worker.Permanent(fmt.Errorf("training job %s failed: %s", rec.Job, reason))
	}
	return false, nil // Stopping, Deleting: wait for the end
}

// upNow reports whether transition i is the current one of a compute
// backend that is Training: the moment its cluster is Up.
func (c *call) upNow(rec *jobRecord, d *sm.JobDescription, i int) bool {
	return !rec.Estimator && d.Status == sm.JobInProgress &&
		d.SecondaryStatus == sm.SecondaryTraining &&
		i >= 0 && i == len(d.Transitions)-1 && d.Transitions[i].Status == sm.SecondaryTraining
}

// reportTransition reports one secondary-status transition in the phase it
// stands for, so the cluster's history reads like the job's.
func (c *call) reportTransition(ctx context.Context, rec *jobRecord, d *sm.JobDescription, t sm.Transition, msg string) error {
	var err error
	switch t.Status {
	case sm.SecondaryTraining:
		err = c.r.Report(ctx, rh.PhaseUp, msg, c.nodes(rec, d), c.info(rec, d))
	case sm.SecondaryInterrupted:
		err = c.r.Report(ctx, rh.PhaseDegraded, msg, nil, c.info(rec, d))
	case sm.SecondaryUploading, sm.SecondaryStopping:
		err = c.r.Report(ctx, rh.PhaseTearingDown, msg, nil, c.info(rec, d))
	default:
		err = c.r.Report(ctx, rh.PhaseProvisioning, msg, nil, c.info(rec, d))
	}
	if err != nil {
		// The loop retries the event; the next attempt reports from here.
		return fmt.Errorf("sagemakerworker: report %s: %w", t.Status, err)
	}
	return nil
}

// reportedMessages are the messages already in the cluster's history for
// this generation, so a redelivered create does not report them twice.
func (c *call) reportedMessages(ctx context.Context) map[string]bool {
	seen := map[string]bool{}
	cl, err := c.s.host.Cluster(ctx, c.in.Cluster)
	if err != nil {
		return seen
	}
	for _, t := range cl.History {
		if t.Generation == c.in.Generation {
			seen[t.Message] = true
		}
	}
	return seen
}

// Teardown stops the cluster's job, follows it until it has stopped, and
// forgets its key.
func (c *call) Teardown(ctx context.Context) error {
	s := c.s
	rec, _, err := s.jobs.Load(ctx, c.in.Cluster)
	if err != nil {
		return err
	}
	if rec == nil {
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return err
		}
		return c.r.Report(ctx, rh.PhaseTerminated, MsgNoJob, nil, nil)
	}
	if err := c.r.Report(ctx, rh.PhaseTearingDown, "stopping training job "+rec.Job, nil, c.info(rec, nil)); err != nil {
		c.log.Warn("cannot report TearingDown", "err", err)
	}
	err = c.cli.Stop(ctx, rec.Job)
	s.m.APIError("stop", err)
	if err != nil {
		return c.fail(ctx, "stop", err)
	}
	msg, err := c.waitStopped(ctx, rec)
	if err != nil {
		return err
	}
	if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
		return err
	}
	return c.r.Report(ctx, rh.PhaseTerminated, msg, nil, c.info(rec, nil))
}

// waitStopped polls a job being stopped until it has ended, stopping it
// again if it turns up running: a create cancelled mid-call by this very
// teardown may still land at AWS after the first stop.
func (c *call) waitStopped(ctx context.Context, rec *jobRecord) (string, error) {
	s := c.s
	wait := s.cfg.PollMin
	missing, failures := 0, 0
	for {
		d, err := c.cli.Describe(ctx, rec.Job)
		s.m.APIError("describe", err)
		switch {
		case err == nil:
			failures = 0
			switch d.Status {
			case sm.JobStopped:
				return "training job " + rec.Job + " stopped", nil
			case sm.JobCompleted, sm.JobFailed:
				return fmt.Sprintf("training job %s had already ended (%s)", rec.Job, d.Status), nil
			case sm.JobInProgress:
				err := c.cli.Stop(ctx, rec.Job)
				s.m.APIError("stop", err)
				if err != nil {
					return "", c.fail(ctx, "stop", err)
				}
			}
		case sm.IsNotFound(err):
			// Never created, unless a create is still in flight: look a few
			// more times when the record says its answer never came.
			if rec.State != stateLaunching || missing >= 3 {
				return fmt.Sprintf("training job %s was never created", rec.Job), nil
			}
			missing++
		case sm.IsRetryable(err) && failures < 10 && ctx.Err() == nil:
			failures++
		default:
			return "", c.fail(ctx, "describe", err)
		}
		if err := sleep(ctx, wait); err != nil {
			return "", c.fail(ctx, "stop", err)
		}
		wait = min(wait*2, s.cfg.PollMax)
	}
}

// Update applies a changed autostop. SageMaker cannot change a running job's
// Environment, but the keep-alive loop reads its limit from a file on each
// node, which the gateway rewrites (keepalive.go); if that cannot be done
// the new value applies to the next job (the next `up`), and the cluster
// says why.
func (c *call) Update(ctx context.Context) error {
	rec, rev, err := c.s.jobs.Load(ctx, c.in.Cluster)
	if err != nil {
		return err
	}
	if rec == nil || rec.State != stateUp {
		// Nothing running to describe: the next launch takes autostop from the spec.
		c.log.Info("autostop recorded for the next job: no job up")
		return nil
	}
	if !rec.Estimator {
		c.autostopNote = c.applyAutostop(ctx, rec, rev)
	}
	return c.observe(ctx, rec, true)
}

// Refresh reports what SageMaker says the cluster's job is now.
func (c *call) Refresh(ctx context.Context) error {
	s := c.s
	rec, _, err := s.jobs.Load(ctx, c.in.Cluster)
	if err != nil {
		return err
	}
	if rec == nil {
		phase, err := c.s.host.RecordedPhase(ctx, c.in.Cluster)
		if err != nil {
			return err
		}
		if !phase.Live() || phase == rh.PhaseProvisioning {
			// Never launched, already final, or a create is about to name its job.
			return nil
		}
		return c.r.Report(ctx, rh.PhaseTerminated, MsgGone, nil, nil)
	}
	return c.observe(ctx, rec, false)
}

// observe describes the job and reports it. Errors are never taken for an
// answer: a throttled or unauthorised describe changes nothing (Runhouse
// took any error for "down" and launched duplicates).
func (c *call) observe(ctx context.Context, rec *jobRecord, autostopChanged bool) error {
	s := c.s
	phase, msg, d, err := c.cli.Status(ctx, rec.Job)
	s.m.APIError("describe", err)
	if err != nil {
		// Plain error even when definite: a refresh must not fail a cluster.
		return fmt.Errorf("sagemakerworker: describe %s: %w", rec.Job, err)
	}
	if d == nil {
		if rec.State == stateLaunching {
			return nil // a create is being retried and will report itself
		}
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return err
		}
		return c.r.Report(ctx, rh.PhaseTerminated, MsgGone, nil, c.info(rec, nil))
	}
	if n := len(d.Transitions); n > 0 && !terminalSecondary(d.Transitions[n-1].Status) {
		msg = transitionMessage(d.Transitions[n-1])
	}
	info := c.info(rec, d)
	switch phase {
	case sm.PhaseUp:
		switch {
		case autostopChanged && info["autostop_next"] != "":
			msg = "autostop " + info["autostop_next"]
		case autostopChanged:
			msg = "autostop " + info["autostop"] + " (applied to the running job)"
		}
		return c.r.Report(ctx, rh.PhaseUp, msg, c.nodes(rec, d), info)
	case sm.PhaseProvisioning:
		if rec.State == stateUp {
			// Up before and not now (Restarting, Updating): Provisioning
			// would rank below Up and be discarded.
			return c.r.Report(ctx, rh.PhaseDegraded, msg, nil, info)
		}
		return c.r.Report(ctx, rh.PhaseProvisioning, msg, nil, info)
	case sm.PhaseTerminated:
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return err
		}
		if neverCameUp(rec, d) {
			return c.r.Report(ctx, rh.PhaseFailed, neverUpMessage(rec.Job, c.cli.Region(), d), nil, info)
		}
		return c.r.Report(ctx, rh.PhaseTerminated, fmt.Sprintf("training job %s ended (%s): %s", rec.Job, d.Status, lastMessage(d)), nil, info)
	case sm.PhaseFailed:
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return err
		}
		return c.r.Report(ctx, rh.PhaseFailed, fmt.Sprintf("training job %s failed: %s", rec.Job, msg), nil, info)
	}
	return c.r.Report(ctx, rh.Phase(phase), msg, nil, info)
}

// nodes are the job's instances as SSH reaches them: the address is the SSM
// target, which the proxy command turns into a session.
func (c *call) nodes(rec *jobRecord, d *sm.JobDescription) []rh.Node {
	n := rec.Instances
	if d != nil && d.InstanceCount > 0 {
		n = int(d.InstanceCount)
	}
	n = max(n, 1)
	nodes := make([]rh.Node, n)
	for i := range nodes {
		target := sm.SSMTarget(rec.Job, i+1)
		nodes[i] = rh.Node{
			Address: target, Port: rh.DefaultSSHPort, User: c.s.cfg.SSHUser,
			InternalAddress: "algo-" + strconv.Itoa(i+1), ProxyCommand: c.proxyCommand(target),
			// An estimator's container runs the user's image, which need not
			// run sshd; only the keep-alive entry point promises one.
			Reachable: !rec.Estimator,
		}
		if rec.Estimator {
			nodes[i].Message = "estimator container: SSH works only if its image runs sshd"
		}
	}
	return nodes
}

func (c *call) proxyCommand(target string) string {
	if c.s.cfg.ProxyCommand != nil {
		return c.s.cfg.ProxyCommand(target)
	}
	profile := c.sp.Profile
	if profile == "" {
		profile = c.s.cfg.Profile
	}
	return sm.SSMProxyCommand(target, profile, c.cli.Region())
}

// info is what status shows about a SageMaker cluster. d may be nil.
func (c *call) info(rec *jobRecord, d *sm.JobDescription) map[string]string {
	m := map[string]string{"job_name": rec.Job, "region": c.cli.Region(), "workload": workloadCompute}
	if rec.Estimator {
		m["workload"] = workloadEstimator
	}
	if rec.ARN != "" {
		m["job_arn"] = rec.ARN
	}
	if rec.InstanceType != "" {
		m["instance_type"] = rec.InstanceType
	}
	if rec.RoleARN != "" {
		m["role_arn"] = rec.RoleARN
	}
	if rec.Instances > 0 {
		m["instances"] = strconv.Itoa(rec.Instances)
	}
	if d == nil {
		return m
	}
	m["job_arn"] = d.ARN
	m["job_status"] = d.Status
	m["secondary_status"] = d.SecondaryStatus
	if d.BillableSeconds > 0 {
		m["billable_seconds"] = strconv.Itoa(int(d.BillableSeconds))
	}
	if !rec.Estimator {
		job := d.Environment[sm.EnvAutostopMins]
		if rec.Autostop != "" {
			job = rec.Autostop // rewritten on the nodes since the job started
		}
		m["autostop"] = autostopInfo(job)
		if want := strconv.Itoa(smAutostop(c.in.Spec.Autostop())); job != "" && job != want {
			why := "SageMaker cannot change a running job's environment"
			if c.autostopNote != "" {
				why = "the running job's nodes could not be told: " + c.autostopNote
			}
			m["autostop_next"] = autostopInfo(want) + ": applies at the next `up` (" + why + ")"
		}
	}
	return m
}

func autostopInfo(mins string) string {
	switch mins {
	case "":
		return "unknown"
	case "-1":
		return "off (runs until its max runtime)"
	}
	return mins + " min idle, then the job ends"
}

// smAutostop maps rh's autostop to the keep-alive's: -1 never; 0, which
// sm.ClusterSpec reads as "default", becomes the smallest real value.
func smAutostop(mins int) int {
	if mins < 0 {
		return -1
	}
	return max(mins, 1)
}

// clusterSpec is the sm spec of this generation. Normalized specs always
// carry an instance type and count, so the registry's defaults give way to
// an estimator that names its own.
func (c *call) clusterSpec(role, pub string, est *sm.Estimator, job string) sm.ClusterSpec {
	sp := c.sp
	instType, count := sp.InstanceType, int32(sp.NumInstances)
	if est != nil {
		if est.InstanceType != "" && instType == rh.DefaultSageMakerInstanceType {
			instType = ""
		}
		if est.InstanceCount != 0 && count == 1 {
			count = 0
		}
	}
	return sm.ClusterSpec{
		Cluster: c.in.Cluster, Generation: c.in.Generation, JobName: job, RoleArn: role, Region: c.cli.Region(),
		InstanceType: instType, InstanceCount: count, ImageURI: sp.ImageURI,
		AutostopMins:       smAutostop(c.in.Spec.Autostop()),
		ConnectionWaitTime: time.Duration(sp.ConnectionWaitTime) * time.Second,
		PublicKey:          pub, Estimator: est,
	}
}

// failRole classifies a role resolution error: STS not answering is
// retried; no role configured, or one that is not a role, fails the cluster
// with sm's message, which names the fix.
func (c *call) failRole(ctx context.Context, err error) error {
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		c.s.m.APIError("get_caller_identity", err)
		return c.fail(ctx, "resolve role", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("resolve role interrupted: %w", context.Cause(ctx))
	}
	_ = c.s.jobs.Delete(context.WithoutCancel(ctx), c.in.Cluster)
	c.s.m.Outcome(outcomeFailed)
	return worker.Permanent(err)
}

// fail classifies an AWS error: answers that are not definite (throttling,
// 5xx, network, credentials) are retried by the loop with backoff — job
// names are fixed, so a retried create can never start a second job; a
// definite refusal fails the cluster with AWS's own message.
func (c *call) fail(ctx context.Context, op string, err error) error {
	s := c.s
	if ctx.Err() != nil {
		if c.op == events.OpCreate {
			s.m.Outcome(outcomeCancelled)
		}
		return fmt.Errorf("%s interrupted: %w", op, context.Cause(ctx))
	}
	if sm.IsRetryable(err) {
		if op == "create" {
			s.m.Outcome(outcomeRetried)
		}
		c.log.Warn("AWS gave no definite answer; will retry", "op", op, "err", err)
		return fmt.Errorf("sagemakerworker: %s: %w", op, err)
	}
	var perm error
	switch {
	case sm.IsResourceLimit(err):
		perm = fmt.Errorf("SageMaker refused the training job: %s", awsMessage(err))
	case errors.Is(err, sm.ErrNameTaken):
		perm = fmt.Errorf("%w (pick another sagemaker.job_name: SageMaker never reuses a job name)", err)
	default:
		perm = fmt.Errorf("SageMaker refused to %s: %s", op, awsMessage(err))
	}
	if op == "create" {
		s.m.Outcome(outcomeFailed)
		// Nothing was created; a later `up` starts a new generation.
		_ = s.jobs.Delete(context.WithoutCancel(ctx), c.in.Cluster)
	}
	return worker.Permanent(perm)
}

// awsMessage is an API error's code and message, without the SDK's
// operation and request-id wrapping.
func awsMessage(err error) string {
	var ae smithy.APIError // sm's *APIError, or the SDK's (STS)
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

func transitionMessage(t sm.Transition) string {
	if t.Message == "" {
		return t.Status
	}
	return t.Status + ": " + t.Message
}

func lastMessage(d *sm.JobDescription) string {
	if n := len(d.Transitions); n > 0 && d.Transitions[n-1].Message != "" {
		return d.Transitions[n-1].Message
	}
	return d.SecondaryStatus
}

// terminalSecondary reports the secondary statuses that end a job; they are
// reported as the job's outcome rather than as a transition.
func terminalSecondary(status string) bool {
	switch status {
	case sm.SecondaryCompleted, sm.SecondaryFailed, sm.SecondaryStopped,
		sm.SecondaryMaxRuntimeExceeded, sm.SecondaryMaxWaitTimeExceeded:
		return true
	}
	return false
}

// sleep waits d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
