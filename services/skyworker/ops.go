package skyworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// MsgGone is the message of a cluster that vanished from SkyPilot.
const MsgGone = "no longer exists on SkyPilot (autostopped or removed outside rh)"

// call is one event being handled.
type call struct {
	s   *Service
	in  *events.ClusterIntent
	r   *worker.Reporter
	op  string
	sky string // the cluster's name on SkyPilot
	log *slog.Logger
}

// Create launches the cluster, or resumes or adopts a launch made earlier for
// the same generation: a redelivered create never launches twice.
func (c *call) Create(ctx context.Context) error {
	s := c.s
	task, err := c.taskYAML()
	if err != nil {
		return worker.Permanent(err)
	}
	// Acquire waits while another live skyworker is at this cluster (its
	// lease lapsed on a slow machine, not its life) and adopts the record of
	// one that died.
	rec, rev, err := s.launches.Acquire(ctx, c.in.Cluster)
	if err != nil {
		return err
	}
	if rec == nil || rec.Generation != c.in.Generation {
		// First attempt of this generation. Claim it before anything is
		// submitted, so a crash after the submit leaves a trace to recover from.
		nrec := launchRecord{Generation: c.in.Generation, SkyName: c.sky, State: statePending}
		if rev, err = s.launches.Save(ctx, c.in.Cluster, nrec, rev); err != nil {
			if errors.Is(err, worker.ErrLostRace) {
				return fmt.Errorf("another skyworker is launching %s: %w", c.in.Cluster, err)
			}
			return err
		}
		rec = &nrec
	} else if rec.State == statePending {
		// An earlier attempt may have submitted a launch and died before
		// recording its id: find it on the server rather than launch again.
		ids, err := s.inflightLaunches(ctx, c.sky)
		if err != nil {
			return c.fail(ctx, "list SkyPilot requests", err)
		}
		if len(ids) > 0 {
			rec.State, rec.RequestID = stateSubmitted, ids[len(ids)-1]
			if rev, err = s.launches.Save(ctx, c.in.Cluster, *rec, rev); err != nil {
				return err
			}
			c.log.Info("resuming a launch found on SkyPilot", "request", rec.RequestID)
		}
	}

	start := time.Now()
	if rec.State != stateSubmitted {
		cr, err := c.status(ctx, skypilot.RefreshAuto)
		if err != nil {
			return c.fail(ctx, "status", err)
		}
		if cr != nil && cr.Status == skypilot.ClusterUp {
			// Already up (launched by an earlier attempt, or by hand under this
			// name): adopt it instead of launching.
			if err := c.reportUp(ctx, cr, "adopted the cluster already UP on SkyPilot"); err != nil {
				return err
			}
			s.m.Outcome(outcomeAdopted)
			return c.markUp(ctx, rec, rev)
		}
		// Absent, STOPPED or INIT (a launch was interrupted): launch. Launching
		// an INIT cluster is how SkyPilot itself resumes one. First make sure
		// the record is still ours: a worker that stalled past the stale
		// period has been replaced and must not launch as well.
		if err := s.launches.Confirm(ctx, c.in.Cluster); err != nil {
			return err
		}
		id, err := s.sky.SubmitLaunch(ctx, skypilot.LaunchRequest{ClusterName: c.sky, TaskYAML: task})
		s.m.APIError("launch", err)
		if err != nil {
			return c.fail(ctx, "launch", err)
		}
		rec.State, rec.RequestID = stateSubmitted, id
		if rev, err = s.launches.Save(ctx, c.in.Cluster, *rec, rev); err != nil {
			if errors.Is(err, worker.ErrLostRace) || errors.Is(context.Cause(ctx), worker.ErrTakenOver) {
				// This worker stalled between its confirm and the submit,
				// and another adopted the cluster meanwhile: that one
				// launches on its own.
				c.withdrawLaunch(ctx, id)
				return err
			}
			// The launch runs; a retry finds it through the pending record.
			c.log.Warn("launch submitted but not recorded", "request", id, "err", err)
		}
	}
	if err := c.r.Report(ctx, rh.PhaseProvisioning, "launching on SkyPilot, request "+rec.RequestID, nil, nil); err != nil {
		c.log.Warn("cannot report Provisioning", "err", err)
	}

	_, err = s.sky.WaitLaunch(ctx, rec.RequestID)
	s.m.APIError("launch_wait", err)
	if err != nil {
		if isStopping(ctx) {
			s.m.Outcome(outcomeCancelled)
			return fmt.Errorf("launch %s interrupted: %w", rec.RequestID, context.Cause(ctx))
		}
		if errors.Is(err, skypilot.ErrRequestNotFound) || errors.Is(err, skypilot.ErrRequestCancelled) {
			// The server lost or cancelled the request (a restart, an operator):
			// start this generation over; the status check decides what to do.
			rec.State, rec.RequestID = statePending, ""
			_, _ = s.launches.Save(ctx, c.in.Cluster, *rec, rev)
		}
		s.m.Took(outcomeFailed, start)
		return c.fail(ctx, "launch", err)
	}
	cr, err := c.status(ctx, skypilot.RefreshNone)
	if err != nil {
		return c.fail(ctx, "status", err)
	}
	if cr == nil || cr.Status != skypilot.ClusterUp {
		// Launched, then gone or not UP at once (autostopped, downed by hand).
		// Start over rather than report an Up nobody can reach.
		rec.State, rec.RequestID = statePending, ""
		_, _ = s.launches.Save(ctx, c.in.Cluster, *rec, rev)
		s.m.Outcome(outcomeRetried)
		return fmt.Errorf("launch %s succeeded but SkyPilot reports %s as %s", rec.RequestID, c.sky, statusOf(cr))
	}
	if err := c.reportUp(ctx, cr, ""); err != nil {
		return err
	}
	s.m.Outcome(outcomeUp)
	s.m.Took(outcomeUp, start)
	return c.markUp(ctx, rec, rev)
}

func (c *call) markUp(ctx context.Context, rec *launchRecord, rev uint64) error {
	rec.State = stateUp
	if _, err := c.s.launches.Save(ctx, c.in.Cluster, *rec, rev); err != nil {
		// Reported Up already; a redelivery adopts the cluster instead.
		c.log.Warn("cannot mark the launch done", "err", err)
	}
	return nil
}

// Teardown cancels a launch in flight, downs the cluster and forgets its key.
func (c *call) Teardown(ctx context.Context) error {
	s := c.s
	if err := c.r.Report(ctx, rh.PhaseTearingDown, "tearing down on SkyPilot", nil, nil); err != nil {
		c.log.Warn("cannot report TearingDown", "err", err)
	}
	rec, _, err := s.launches.Load(ctx, c.in.Cluster)
	if err != nil {
		return err
	}
	if rec != nil && rec.State != stateUp {
		if err := c.cancelLaunch(ctx, rec); err != nil {
			return c.fail(ctx, "cancel", err)
		}
	}
	msg := "terminated on SkyPilot"
	err = s.sky.Down(ctx, c.sky, false)
	s.m.APIError("down", err)
	switch {
	case skypilot.IsClusterDoesNotExist(err):
		msg = "already gone from SkyPilot"
	case err != nil:
		return c.fail(ctx, "down", err)
	}
	if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
		return err
	}
	return c.r.Report(ctx, rh.PhaseTerminated, msg, nil, c.goneInfo())
}

// withdrawLaunch cancels launch id, which this worker submitted after
// another worker had adopted the cluster, unless the adopter took this very
// launch over (its record names id). Should the adopter take it over just
// after the check, its wait ends cancelled and its retry launches afresh:
// one launch either way.
func (c *call) withdrawLaunch(ctx context.Context, id string) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if cur, _, err := s.launches.Load(ctx, c.in.Cluster); err != nil || (cur != nil && cur.RequestID == id) {
		return
	}
	_, err := s.sky.Cancel(ctx, id)
	s.m.APIError("cancel", err)
	if err != nil && !errors.Is(err, skypilot.ErrRequestNotFound) {
		c.log.Warn("cannot withdraw a launch submitted after another worker took the cluster over", "request", id, "err", err)
		return
	}
	c.log.Warn("withdrew a launch submitted after another worker took the cluster over", "request", id)
}

// cancelLaunch cancels the unfinished launch of rec and waits for it to end,
// so the /down that follows sees the cluster as the launch left it (SkyPilot
// cancels asynchronously, skypilot#7703).
func (c *call) cancelLaunch(ctx context.Context, rec *launchRecord) error {
	s := c.s
	ids := []string{}
	if rec.RequestID != "" {
		ids = append(ids, rec.RequestID)
	} else {
		found, err := s.inflightLaunches(ctx, c.sky)
		if err != nil {
			return err
		}
		ids = found
	}
	if len(ids) == 0 {
		return nil
	}
	cancelled, err := s.sky.Cancel(ctx, ids...)
	s.m.APIError("cancel", err)
	if err != nil && !errors.Is(err, skypilot.ErrRequestNotFound) {
		return err
	}
	c.log.Info("cancelled the launch in flight", "requests", cancelled)
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := s.sky.Wait(wctx, id)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// Update applies a changed autostop to a live cluster.
func (c *call) Update(ctx context.Context) error {
	s := c.s
	mins := c.in.Spec.Autostop()
	cr, err := c.status(ctx, skypilot.RefreshNone)
	if err != nil {
		return c.fail(ctx, "status", err)
	}
	if cr == nil || cr.Status != skypilot.ClusterUp {
		// Nothing live to change: the next launch takes autostop from the spec.
		c.log.Info("autostop not applied: cluster not UP on SkyPilot", "status", statusOf(cr))
		return nil
	}
	err = s.sky.Autostop(ctx, c.sky, mins, true)
	s.m.APIError("autostop", err)
	if err != nil {
		var re *skypilot.RequestError
		if errors.As(err, &re) && (re.Type == skypilot.TypeClusterNotUp || re.Type == skypilot.TypeClusterDoesNotExist) {
			return nil // went away meanwhile; refresh reports it
		}
		return c.fail(ctx, "autostop", err)
	}
	if cr, err = c.status(ctx, skypilot.RefreshNone); err != nil {
		return c.fail(ctx, "status", err)
	}
	return c.reportObserved(ctx, cr)
}

// Refresh reports what SkyPilot says the cluster is now.
func (c *call) Refresh(ctx context.Context) error {
	cr, err := c.status(ctx, skypilot.RefreshAuto)
	if err != nil {
		return c.fail(ctx, "status", err)
	}
	return c.reportObserved(ctx, cr)
}

// reportObserved maps a SkyPilot record (nil: absent) to a report.
func (c *call) reportObserved(ctx context.Context, cr *skypilot.ClusterRecord) error {
	s := c.s
	rec, _, err := s.launches.Load(ctx, c.in.Cluster)
	if err != nil {
		return err
	}
	launching := rec != nil && rec.State != stateUp
	if cr == nil {
		phase, err := c.s.host.RecordedPhase(ctx, c.in.Cluster)
		if err != nil {
			return err
		}
		if !phase.Live() || (launching && phase != rh.PhaseTearingDown) {
			// Nothing to say: never launched, already final, or a create of this
			// cluster is still being retried and will report itself.
			return nil
		}
		if err := s.host.Forget(ctx, c.in.Cluster); err != nil {
			return err
		}
		return c.r.Report(ctx, rh.PhaseTerminated, MsgGone, nil, c.goneInfo())
	}
	switch cr.Status {
	case skypilot.ClusterUp:
		return c.reportUp(ctx, cr, "")
	case skypilot.ClusterAutostopping:
		return c.reportUp(ctx, cr, "autostopping on SkyPilot (idle)")
	case skypilot.ClusterStopped:
		return c.r.Report(ctx, rh.PhaseStopped, "stopped on SkyPilot", nil, c.info(cr))
	default: // INIT, PENDING
		if launching {
			return c.r.Report(ctx, rh.PhaseProvisioning, "SkyPilot reports "+string(cr.Status), nil, c.info(cr))
		}
		// A cluster that was up and is INIT again has nodes SkyPilot found
		// unhealthy; Provisioning would rank below Up and be discarded.
		return c.r.Report(ctx, rh.PhaseDegraded, "SkyPilot reports INIT: some nodes are not healthy (run `rhcli cluster up` to repair)", nil, c.info(cr))
	}
}

// status returns the cluster's SkyPilot record, nil when it does not exist.
func (c *call) status(ctx context.Context, refresh string) (*skypilot.ClusterRecord, error) {
	recs, err := c.s.sky.Status(ctx, []string{c.sky}, refresh)
	c.s.m.APIError("status", err)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		if recs[i].Name == c.sky {
			return &recs[i], nil
		}
	}
	return nil, nil
}

// reportUp stores the cluster's key and reports it Up with its nodes.
func (c *call) reportUp(ctx context.Context, cr *skypilot.ClusterRecord, msg string) error {
	nodes := nodesOf(cr)
	if len(nodes) == 0 {
		return fmt.Errorf("SkyPilot reports %s UP but its handle has no node addresses", c.sky)
	}
	if cr.Credentials != nil && cr.Credentials.SSHPrivateKeyContent != "" {
		if err := c.s.host.Secrets.Put(ctx, c.in.Cluster, rh.Secrets{SSHPrivateKey: cr.Credentials.SSHPrivateKeyContent}); err != nil {
			return fmt.Errorf("skyworker: %w", err)
		}
	} else if msg == "" {
		msg = "SkyPilot sent no SSH key (its server lacks the key file); rh cannot run commands on this cluster"
	}
	if msg == "" {
		msg = fmt.Sprintf("up on SkyPilot: %d node(s)", len(nodes))
		if cr.Cloud != "" {
			msg += " on " + cr.Cloud
			if cr.Region != "" {
				msg += " " + cr.Region
			}
		}
	}
	return c.r.Report(ctx, rh.PhaseUp, msg, nodes, c.info(cr))
}

// nodesOf lists the nodes of a record's handle, head first. SkyPilot waits
// for SSH before it calls a cluster UP, hence Reachable.
func nodesOf(cr *skypilot.ClusterRecord) []rh.Node {
	if cr.Handle == nil {
		return nil
	}
	user := cr.Handle.SSHUser
	proxy := ""
	if cr.Credentials != nil {
		if cr.Credentials.SSHUser != "" {
			user = cr.Credentials.SSHUser
		}
		proxy = cr.Credentials.SSHProxyCommand
	}
	up := cr.Status == skypilot.ClusterUp || cr.Status == skypilot.ClusterAutostopping
	nodes := make([]rh.Node, 0, len(cr.Handle.Nodes))
	for _, n := range cr.Handle.Nodes {
		addr := n.External
		if addr == "" {
			addr = n.Internal
		}
		port := n.SSHPort
		if port == 0 {
			port = rh.DefaultSSHPort
		}
		nodes = append(nodes, rh.Node{Address: addr, Port: port, User: user, InternalAddress: n.Internal, ProxyCommand: proxy, Reachable: up})
	}
	return nodes
}

// info is what status shows about an on-demand cluster.
func (c *call) info(cr *skypilot.ClusterRecord) map[string]string {
	m := map[string]string{
		"skypilot_cluster": c.sky,
		"skypilot_status":  string(cr.Status),
		"autostop":         autostopInfo(cr.Autostop, cr.ToDown),
	}
	for k, v := range map[string]string{"cloud": cr.Cloud, "region": cr.Region, "zone": cr.Zone, "resources": cr.ResourcesStr} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// goneInfo is what status shows once SkyPilot has no cluster: its name,
// and none of the live fields (status, autostop) that would still read UP.
func (c *call) goneInfo() map[string]string {
	return map[string]string{"skypilot_cluster": c.sky}
}

func autostopInfo(mins int, down bool) string {
	if mins < 0 {
		return "off"
	}
	if down {
		return strconv.Itoa(mins) + " min idle, then down"
	}
	return strconv.Itoa(mins) + " min idle, then stop"
}

func statusOf(cr *skypilot.ClusterRecord) string {
	if cr == nil {
		return "absent"
	}
	return string(cr.Status)
}

// taskYAML renders the intent's spec as a SkyPilot task.
func (c *call) taskYAML() (string, error) {
	od := c.in.Spec.OnDemand
	ports := make([]string, 0, len(od.OpenPorts))
	for _, p := range od.OpenPorts {
		ports = append(ports, strconv.Itoa(p))
	}
	y, err := skypilot.TaskYAML(skypilot.TaskSpec{
		Name: c.sky, NumNodes: max(od.NumInstances, 1), InstanceType: od.InstanceType, Provider: od.Provider,
		Region: od.Region, UseSpot: od.UseSpot, ImageID: od.ImageID, Memory: od.Memory, DiskSize: od.DiskSize,
		OpenPorts: ports, AutostopMins: c.in.Spec.Autostop(),
	})
	if err != nil {
		return "", fmt.Errorf("cannot express the spec as a SkyPilot task: %w", err)
	}
	return y, nil
}

// fail classifies an error of a SkyPilot operation: failures retrying cannot
// fix fail the cluster with an actionable message; the rest are retried, and
// the cluster shows why while they are.
func (c *call) fail(ctx context.Context, op string, err error) error {
	s := c.s
	if isStopping(ctx) {
		return fmt.Errorf("%s interrupted: %w", op, context.Cause(ctx))
	}
	var re *skypilot.RequestError
	var perm error
	switch {
	case skypilot.IsResourcesUnavailable(err):
		perm = fmt.Errorf("SkyPilot could not provision the cluster: %s", skypilot.StripANSI(re2msg(err)))
	case skypilot.IsInvalidConfig(err):
		perm = fmt.Errorf("SkyPilot rejected the task: %s", skypilot.StripANSI(re2msg(err)))
	case errors.As(err, &re) && (re.Type == skypilot.TypeClusterOwnerIdentityErr || re.Type == "InvalidClusterNameError" || re.Type == skypilot.TypeNotSupported):
		perm = fmt.Errorf("SkyPilot refused the %s: %s: %s", op, re.Type, skypilot.StripANSI(re.Message))
	case errors.Is(err, skypilot.ErrUnauthorized), errors.Is(err, skypilot.ErrVersionMismatch):
		perm = err // their messages name the fix
	}
	if perm != nil {
		if op == "launch" {
			s.m.Outcome(outcomeFailed)
			// Nothing is left launching; a later `up` starts a new generation.
			_ = s.launches.Delete(context.WithoutCancel(ctx), c.in.Cluster)
		}
		return worker.Permanent(perm)
	}
	if op == "launch" {
		s.m.Outcome(outcomeRetried)
	}
	if errors.Is(err, skypilot.ErrUnavailable) {
		err = fmt.Errorf("the SkyPilot API server at %s is not answering (set %s to its URL, or start one with `sky api start`); retrying: %w",
			s.sky.Endpoint(), skypilot.EnvEndpoint, err)
		if c.op == events.OpCreate {
			// Say so on the cluster while the loop backs off; a create would
			// otherwise sit in Pending with no reason given.
			_ = c.r.Report(ctx, rh.PhaseProvisioning, err.Error(), nil, nil)
		}
	}
	c.log.Warn("SkyPilot operation failed; will retry", "op", op, "err", err)
	return fmt.Errorf("skyworker: %s %s: %w", op, c.sky, err)
}

func re2msg(err error) string {
	var re *skypilot.RequestError
	if errors.As(err, &re) {
		return re.Message
	}
	return err.Error()
}
