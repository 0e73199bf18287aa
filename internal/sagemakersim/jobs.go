package sagemakersim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TrainingJobStatus values.
const (
	statusInProgress = "InProgress"
	statusCompleted  = "Completed"
	statusFailed     = "Failed"
	statusStopping   = "Stopping"
	statusStopped    = "Stopped"
)

type transition struct {
	status, message string
	start, end      time.Time
}

type ctrlKind int

const (
	ctrlStop ctrlKind = iota + 1
	ctrlFail
	ctrlInterrupt
)

type ctrlMsg struct {
	kind   ctrlKind
	reason string
}

// job is one training job. Its fields are guarded by Server.mu; only its
// run goroutine changes status.
type job struct {
	name, arn string
	req       createRequest
	created   time.Time

	status, secondary string
	failureReason     string
	transitions       []transition
	lastModified      time.Time
	trainingStart     time.Time // first entry into Downloading (AWS bills from there)
	trainingEnd       time.Time
	nodes             []Endpoint

	keepAlive    bool
	autostop     time.Duration // AWS time; < 0: until MaxRuntime
	connWait     time.Duration // AWS time
	lastActivity time.Time
	checks       int                  // idleness checks the keep-alive loop made
	sessionBeats map[string]time.Time // open SSM proxy sessions → last heartbeat
	failReason   string
	endEarly     string // complete after Downloading with this message, never Training

	ctrl chan ctrlMsg
	done chan struct{}
}

// newJobLocked registers a job in Starting. Called with s.mu held.
func (s *Server) newJobLocked(req *createRequest) *job {
	now := time.Now()
	j := &job{
		name:    req.TrainingJobName,
		arn:     s.arn(req.TrainingJobName),
		req:     *req,
		created: now,
		status:  statusInProgress,
		ctrl:    make(chan ctrlMsg, 8),
		done:    make(chan struct{}),
	}
	if req.Environment[EnvKeepAlive] != "" {
		j.keepAlive = true
		j.autostop = -1
		if v, err := strconv.Atoi(strings.TrimSpace(req.Environment[EnvAutostopMins])); err == nil && v >= 0 {
			j.autostop = time.Duration(v) * time.Minute
		}
		if v, err := strconv.Atoi(strings.TrimSpace(req.Environment[EnvConnectionWaitTime])); err == nil && v > 0 {
			j.connWait = time.Duration(v) * time.Second
		}
	}
	if len(s.faults.failNext) > 0 {
		j.failReason = s.faults.failNext[0]
		s.faults.failNext = s.faults.failNext[1:]
	}
	if len(s.faults.endEarlyNext) > 0 {
		j.endEarly = s.faults.endEarlyNext[0]
		s.faults.endEarlyNext = s.faults.endEarlyNext[1:]
	}
	j.setSecondaryLocked(now, "Starting", "Launching requested ML instances")
	s.jobs[j.name] = j
	s.order = append(s.order, j.name)
	return j
}

func (j *job) setSecondaryLocked(now time.Time, status, msg string) {
	if n := len(j.transitions); n > 0 && j.transitions[n-1].end.IsZero() {
		j.transitions[n-1].end = now
	}
	j.transitions = append(j.transitions, transition{status: status, message: msg, start: now})
	j.secondary = status
	j.lastModified = now
}

func (s *Server) setSecondary(j *job, status, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.setSecondaryLocked(time.Now(), status, msg)
	s.log.Debug("job transition", "job", j.name, "secondary", status)
}

// control sends a control message to a running job.
func (s *Server) control(name string, m ctrlMsg) error {
	s.mu.Lock()
	j, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no job %s", name)
	}
	select {
	case j.ctrl <- m:
		return nil
	case <-j.done:
		return fmt.Errorf("job %s has ended", name)
	}
}

func (s *Server) start(j *job) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(j.done)
		s.run(j)
	}()
}

// outcome of waiting in a phase.
type outcome int

const (
	outElapsed outcome = iota
	outStop
	outFail
	outInterrupt
	outMaxRuntime
	outShutdown
)

// run drives one job through its state machine.
func (s *Server) run(j *job) {
	t := s.opts.Timings
	maxRun := time.NewTimer(s.scale(time.Duration(*j.req.StoppingCondition.MaxRuntimeInSeconds) * time.Second))
	defer maxRun.Stop()
	var failReason string

	// wait sleeps d (real time) unless something happens first.
	wait := func(d time.Duration) outcome {
		tm := time.NewTimer(d)
		defer tm.Stop()
		for {
			select {
			case <-tm.C:
				return outElapsed
			case <-maxRun.C:
				return outMaxRuntime
			case <-s.ctx.Done():
				return outShutdown
			case m := <-j.ctrl:
				switch m.kind {
				case ctrlStop:
					return outStop
				case ctrlFail:
					failReason = m.reason
					return outFail
				case ctrlInterrupt:
					return outInterrupt
				}
			}
		}
	}

	var o outcome
loop:
	for {
		// Starting was set at creation (or after an interruption).
		if o = wait(s.scale(t.Starting)); o != outElapsed {
			break loop
		}
		s.setSecondary(j, "Downloading", "Downloading input data")
		s.mu.Lock()
		if j.trainingStart.IsZero() {
			j.trainingStart = time.Now()
		}
		s.mu.Unlock()
		if o = wait(s.scale(t.Downloading)); o != outElapsed {
			break loop
		}
		if j.failReason != "" {
			failReason, o = j.failReason, outFail
			break loop
		}
		if j.endEarly != "" {
			s.setSecondary(j, "Uploading", "Uploading generated training model")
			if wait(s.scale(t.Uploading)) == outShutdown {
				return
			}
			s.finish(j, statusCompleted, "Completed", j.endEarly, "")
			return
		}
		if err := s.provision(j); err != nil {
			failReason, o = "InternalServerError: could not provision instances: "+err.Error(), outFail
			break loop
		}
		s.setSecondary(j, "Training", "Training image download completed. Training in progress.")
		if j.keepAlive {
			o = s.keepAlive(j, wait)
		} else {
			o = wait(s.scale(t.Training))
		}
		if o == outInterrupt {
			s.release(j)
			s.setSecondary(j, "Interrupted", "Training job interrupted: the spot instance capacity was reclaimed.")
			if o = wait(s.scale(t.Starting)); o != outElapsed {
				break loop
			}
			s.setSecondary(j, "Starting", "Launching requested ML instances")
			continue
		}
		break
	}

	switch o {
	case outElapsed:
		s.release(j)
		s.setSecondary(j, "Uploading", "Uploading generated training model")
		if wait(s.scale(t.Uploading)) == outShutdown {
			return
		}
		s.finish(j, statusCompleted, "Completed", "Training job completed", "")
	case outStop:
		s.mu.Lock()
		j.status = statusStopping
		j.setSecondaryLocked(time.Now(), "Stopping", "Stopping the training job")
		s.mu.Unlock()
		// A stopping job ignores further control messages (the grace period
		// runs out regardless).
		select {
		case <-time.After(s.scale(t.Stopping)):
		case <-s.ctx.Done():
			s.release(j)
			return
		}
		s.release(j)
		s.finish(j, statusStopped, "Stopped", "Training job stopped", "")
	case outFail:
		s.release(j)
		s.finish(j, statusFailed, "Failed", "Training job failed. "+failReason, failReason)
	case outMaxRuntime:
		s.release(j)
		s.finish(j, statusStopped, "MaxRuntimeExceeded", "Training job exceeded its MaxRuntimeInSeconds and was stopped", "")
	case outShutdown, outInterrupt:
		s.release(j)
	}
}

// keepAlive models the keep-alive entry point: stay in Training, and every
// tick exit (complete) when there has been no activity for longer than the
// job's autostop; -1 never exits on its own (MaxRuntime ends it).
func (s *Server) keepAlive(j *job, wait func(time.Duration) outcome) outcome {
	s.mu.Lock()
	j.lastActivity = time.Now().Add(s.scale(j.connWait))
	s.mu.Unlock()
	tick := s.scale(s.opts.Timings.KeepAliveTick)
	for {
		if o := wait(tick); o != outElapsed {
			return o
		}
		s.mu.Lock()
		j.checks++
		idle := s.liveSessionsLocked(j) == 0 && j.autostop >= 0 && time.Since(j.lastActivity) > s.scale(j.autostop)
		s.mu.Unlock()
		if idle {
			s.log.Info("keep-alive job idle past autostop; exiting", "job", j.name, "autostop", j.autostop)
			return outElapsed
		}
	}
}

func (s *Server) provision(j *job) error {
	if s.opts.Nodes == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	eps, err := s.opts.Nodes.Provision(ctx, j.name, int(*j.req.ResourceConfig.InstanceCount), j.req.Environment[EnvSSHPublicKey])
	if err != nil {
		return err
	}
	s.mu.Lock()
	j.nodes = eps
	s.mu.Unlock()
	return nil
}

func (s *Server) release(j *job) {
	s.mu.Lock()
	had := j.nodes != nil
	j.nodes = nil
	s.mu.Unlock()
	if !had || s.opts.Nodes == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.opts.Nodes.Release(ctx, j.name); err != nil {
		s.log.Warn("releasing nodes failed", "job", j.name, "err", err)
	}
}

func (s *Server) finish(j *job, status, secondary, msg, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	j.status = status
	j.failureReason = reason
	j.setSecondaryLocked(now, secondary, msg)
	j.transitions[len(j.transitions)-1].end = now
	j.trainingEnd = now
	s.log.Info("training job ended", "job", j.name, "status", status, "secondary", secondary, "reason", reason)
}

// describeLocked renders a job as DescribeTrainingJob does. Called with s.mu
// held.
func (s *Server) describeLocked(j *job) describeResponse {
	r := j.req
	d := describeResponse{
		TrainingJobName:           j.name,
		TrainingJobArn:            j.arn,
		TrainingJobStatus:         j.status,
		SecondaryStatus:           j.secondary,
		FailureReason:             j.failureReason,
		RoleArn:                   r.RoleArn,
		AlgorithmSpecification:    r.AlgorithmSpecification,
		ResourceConfig:            r.ResourceConfig,
		StoppingCondition:         r.StoppingCondition,
		OutputDataConfig:          r.OutputDataConfig,
		InputDataConfig:           r.InputDataConfig,
		HyperParameters:           r.HyperParameters,
		Environment:               r.Environment,
		EnableManagedSpotTraining: r.EnableManagedSpotTraining,
		RemoteDebugConfig:         r.RemoteDebugConfig,
		CreationTime:              timePtr(j.created),
		LastModifiedTime:          timePtr(j.lastModified),
		TrainingStartTime:         timePtr(j.trainingStart),
		TrainingEndTime:           timePtr(j.trainingEnd),
	}
	for _, t := range j.transitions {
		d.SecondaryStatusTransitions = append(d.SecondaryStatusTransitions, transitionWire{
			Status: t.status, StartTime: timePtr(t.start), EndTime: timePtr(t.end), StatusMessage: t.message,
		})
	}
	if !j.trainingEnd.IsZero() && !j.trainingStart.IsZero() {
		secs := int32(s.unscale(j.trainingEnd.Sub(j.trainingStart)).Seconds())
		d.TrainingTimeInSeconds = &secs
		bill := secs * deref(r.ResourceConfig.InstanceCount)
		if r.EnableManagedSpotTraining != nil && *r.EnableManagedSpotTraining {
			bill = bill * 3 / 10 // spot savings, roughly as AWS reports them
		}
		d.BillableTimeInSeconds = &bill
	}
	if j.status == statusCompleted || j.status == statusStopped {
		d.ModelArtifacts = &modelArtifacts{S3ModelArtifacts: strings.TrimSuffix(r.OutputDataConfig.S3OutputPath, "/") + "/" + j.name + "/output/model.tar.gz"}
	}
	if ka := r.ResourceConfig.KeepAlivePeriodInSeconds; ka != nil && *ka > 0 && !j.trainingEnd.IsZero() {
		retained := s.unscale(time.Since(j.trainingEnd))
		wp := &warmPoolStatus{Status: "Available"}
		if retained > time.Duration(*ka)*time.Second {
			wp.Status = "Terminated"
			retained = time.Duration(*ka) * time.Second
		}
		secs := int32(retained.Seconds())
		wp.ResourceRetainedBillableTimeInSeconds = &secs
		d.WarmPoolStatus = wp
	}
	return d
}
