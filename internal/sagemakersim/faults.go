package sagemakersim

import (
	"fmt"
	"time"
)

// faults are the injected misbehaviours. All are guarded by Server.mu.
type faults struct {
	throttleN     int       // next N SageMaker calls answer ThrottlingException
	throttleUntil time.Time // or every call until then
	internalN     int       // next N SageMaker calls answer 500 InternalFailure
	limitN        int       // next N creates answer ResourceLimitExceeded
	lostN         int       // next N creates create the job but answer 500
	failNext      []string  // next created jobs fail in Downloading with this reason
	endEarlyNext  []string  // next created jobs complete in Downloading with this message
}

// ThrottleNext makes the next n SageMaker calls (any operation) answer
// ThrottlingException "Rate exceeded" with HTTP 400, as AWS does.
func (s *Server) ThrottleNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.throttleN = n
}

// ThrottleFor makes every SageMaker call throttled for the next d (real time).
func (s *Server) ThrottleFor(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.throttleUntil = time.Now().Add(d)
}

// InternalErrorNext makes the next n SageMaker calls answer HTTP 500
// InternalFailure without doing anything.
func (s *Server) InternalErrorNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.internalN = n
}

// ResourceLimitNext makes the next n CreateTrainingJob calls answer
// ResourceLimitExceeded (an account quota for the instance type).
func (s *Server) ResourceLimitNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.limitN = n
}

// LoseNextCreateAnswer makes the next n CreateTrainingJob calls create their
// job but answer HTTP 500, as when an answer is lost on the way back; the
// SDK's retry then meets ResourceInUse.
func (s *Server) LoseNextCreateAnswer(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.lostN = n
}

// FailNextJob makes the next created job fail, after Downloading, with the
// given FailureReason (e.g. "ClientError: Unable to pull image").
func (s *Server) FailNextJob(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failNext = append(s.faults.failNext, reason)
}

// CompleteNextJobEarly makes the next created job end Completed right after
// Downloading, without ever reaching Training, its last transition carrying
// msg — as a job whose entry point exits at once does (a keep-alive whose
// sshd never started). Its nodes are never provisioned.
func (s *Server) CompleteNextJobEarly(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.endEarlyNext = append(s.faults.endEarlyNext, msg)
}

// FailJob makes a job that is InProgress fail now with the given reason
// (e.g. "AlgorithmError: ...").
func (s *Server) FailJob(name, reason string) error {
	return s.control(name, ctrlMsg{kind: ctrlFail, reason: reason})
}

// InterruptSpot reclaims the spot capacity of a job that uses managed spot
// training: its nodes are released, it shows SecondaryStatus Interrupted and
// then starts over from Starting.
func (s *Server) InterruptSpot(name string) error {
	s.mu.Lock()
	j, ok := s.jobs[name]
	spot := ok && j.req.EnableManagedSpotTraining != nil && *j.req.EnableManagedSpotTraining
	s.mu.Unlock()
	if ok && !spot {
		return fmt.Errorf("job %s does not use managed spot training", name)
	}
	return s.control(name, ctrlMsg{kind: ctrlInterrupt})
}

// Touch records activity on a keep-alive job (as an SSH session would), so
// its idle autostop clock starts again.
func (s *Server) Touch(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	if !ok {
		return fmt.Errorf("no job %s", name)
	}
	j.lastActivity = later(j.lastActivity, time.Now())
	return nil
}

// KeepAliveChecks returns how many times a keep-alive job's loop has
// checked for idleness (once a KeepAliveTick): tests wait on it instead of
// sleeping for ticks.
func (s *Server) KeepAliveChecks(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[name]; ok {
		return j.checks
	}
	return 0
}

// CreateCalls returns every CreateTrainingJob request that reached the
// simulator, in order.
func (s *Server) CreateCalls() []CreateCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CreateCall(nil), s.creates...)
}

// JobCount returns how many training jobs exist.
func (s *Server) JobCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// JobStatus returns a job's TrainingJobStatus and SecondaryStatus.
func (s *Server) JobStatus(name string) (status, secondary string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	if !ok {
		return "", "", false
	}
	return j.status, j.secondary, true
}

// JobNodes returns the endpoints of a job's nodes while it is in Training.
func (s *Server) JobNodes(name string) []Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[name]; ok {
		return append([]Endpoint(nil), j.nodes...)
	}
	return nil
}

// takeFault decides, under s.mu, whether a SageMaker call is answered by an
// injected throttle or internal error.
func (s *Server) takeFault() (code string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.faults.throttleN > 0:
		s.faults.throttleN--
		return "ThrottlingException", 400
	case time.Now().Before(s.faults.throttleUntil):
		return "ThrottlingException", 400
	case s.faults.internalN > 0:
		s.faults.internalN--
		return "InternalFailure", 500
	}
	return "", 0
}
