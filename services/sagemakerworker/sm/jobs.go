package sm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Cluster phases this package maps job states to (the registry's record
// phases).
const (
	PhasePending      = "Pending"
	PhaseProvisioning = "Provisioning"
	PhaseUp           = "Up"
	PhaseDegraded     = "Degraded"
	PhaseStopped      = "Stopped"
	PhaseTearingDown  = "TearingDown"
	PhaseTerminated   = "Terminated"
	PhaseFailed       = "Failed"
)

// Transition is one SecondaryStatusTransition.
type Transition struct {
	Status  string
	Message string
	Start   time.Time
	End     time.Time // zero while current
}

// JobDescription is the part of DescribeTrainingJob the worker uses.
type JobDescription struct {
	Name            string
	ARN             string
	Status          string // TrainingJobStatus
	SecondaryStatus string
	FailureReason   string
	Transitions     []Transition
	Created         time.Time
	InstanceCount   int32
	BillableSeconds int32
	Environment     map[string]string
}

// Describe fetches a job. Errors are the API's (classify them with
// IsNotFound / IsRetryable).
func (c *Client) Describe(ctx context.Context, name string) (*JobDescription, error) {
	var out describeTrainingJobOutput
	if err := c.api.call(ctx, "DescribeTrainingJob", trainingJobName{name}, &out); err != nil {
		return nil, fmt.Errorf("describing training job %s: %w", name, err)
	}
	d := &JobDescription{
		Name:            out.TrainingJobName,
		ARN:             out.TrainingJobArn,
		Status:          out.TrainingJobStatus,
		SecondaryStatus: out.SecondaryStatus,
		FailureReason:   out.FailureReason,
		Created:         out.CreationTime.time(),
		BillableSeconds: out.BillableTimeInSeconds,
		Environment:     out.Environment,
	}
	if out.ResourceConfig != nil {
		d.InstanceCount = out.ResourceConfig.InstanceCount
	}
	for _, t := range out.SecondaryStatusTransitions {
		d.Transitions = append(d.Transitions, Transition{
			Status:  t.Status,
			Message: t.StatusMessage,
			Start:   t.StartTime.time(),
			End:     t.EndTime.time(),
		})
	}
	return d, nil
}

// MapStatus maps a job's state to a cluster phase and a message for the
// user. Only a described job decides a phase; see Status for errors.
func MapStatus(d *JobDescription) (phase, message string) {
	if d == nil {
		return PhaseTerminated, "training job not found"
	}
	message = d.SecondaryStatus
	if n := len(d.Transitions); n > 0 && d.Transitions[n-1].Message != "" {
		message = d.Transitions[n-1].Message
	}
	switch d.Status {
	case JobInProgress:
		switch d.SecondaryStatus {
		case SecondaryTraining:
			return PhaseUp, message
		case SecondaryInterrupted:
			// Spot capacity reclaimed: the nodes are gone, SageMaker will
			// start them again.
			return PhaseDegraded, message
		case SecondaryUploading, SecondaryStopping:
			// The entry point has exited (idle autostop) or is stopping.
			return PhaseTearingDown, message
		default:
			// Starting, Pending, Downloading, LaunchingMLInstances,
			// PreparingTraining, DownloadingTrainingImage, Restarting,
			// Updating, and any value added later.
			return PhaseProvisioning, message
		}
	case JobStopping, JobDeleting:
		return PhaseTearingDown, message
	case JobCompleted, JobStopped:
		return PhaseTerminated, message
	case JobFailed:
		if d.FailureReason != "" {
			return PhaseFailed, d.FailureReason
		}
		return PhaseFailed, message
	}
	return PhaseProvisioning, fmt.Sprintf("unknown training job status %q", d.Status)
}

// Status describes a job and maps it. A missing job is Terminated (it ended
// and aged out, or was never created). Any other error is returned as is and
// must not change the cluster's phase: Runhouse took "error" for "down" and
// launched duplicates on a credentials error.
func (c *Client) Status(ctx context.Context, name string) (phase, message string, d *JobDescription, err error) {
	d, err = c.Describe(ctx, name)
	if err != nil {
		if IsNotFound(err) {
			return PhaseTerminated, "training job " + name + " not found", nil, nil
		}
		return "", "", nil, err
	}
	phase, message = MapStatus(d)
	return phase, message, d, nil
}

// ErrNameTaken means a job with the wanted name exists but belongs to
// another cluster or generation.
var ErrNameTaken = errors.New("training job name is taken by another cluster or generation")

// LaunchResult says what Launch did.
type LaunchResult struct {
	ARN string
	// Adopted is true when the job already existed and is ours (an earlier
	// attempt's answer was lost, or an event was redelivered).
	Adopted bool
	// Attempts counts our CreateTrainingJob calls (each may include the
	// retryer's own retries).
	Attempts int
}

// Launch creates the job in, idempotently. Answers that are not definite
// (IsRetryable) are retried with backoff up to Options.LaunchAttempts, on
// top of the retryer's retries of each call; since
// the name is fixed, a retry can only meet ResourceInUse, never start a
// second job. On ResourceInUse it describes the job and adopts it when its
// Environment names the same cluster and generation. ResourceLimitExceeded
// and other definite refusals return at once.
func (c *Client) Launch(ctx context.Context, in *CreateTrainingJobInput) (LaunchResult, error) {
	name := in.TrainingJobName
	var res LaunchResult
	backoff := c.opts.LaunchBackoff
	for {
		res.Attempts++
		var out createTrainingJobOutput
		err := c.api.call(ctx, "CreateTrainingJob", in, &out)
		if err == nil {
			res.ARN = out.TrainingJobArn
			c.log.Info("training job created", "job", name, "arn", res.ARN, "attempts", res.Attempts)
			return res, nil
		}
		switch {
		case IsInUse(err):
			return c.adopt(ctx, in, res)
		case IsResourceLimit(err):
			return res, fmt.Errorf("creating training job %s: %w", name, err)
		case !IsRetryable(err):
			return res, fmt.Errorf("creating training job %s: %w", name, err)
		case res.Attempts >= c.opts.LaunchAttempts:
			return res, fmt.Errorf("creating training job %s: no definite answer after %d attempts: %w", name, res.Attempts, err)
		}
		c.log.Warn("create training job: no definite answer, retrying", "job", name, "attempt", res.Attempts, "err", err)
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, 20*time.Second)
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("creating training job %s: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (c *Client) adopt(ctx context.Context, in *CreateTrainingJobInput, res LaunchResult) (LaunchResult, error) {
	name := in.TrainingJobName
	d, err := c.Describe(ctx, name)
	if err != nil {
		return res, fmt.Errorf("training job %s exists but could not be described to adopt it: %w", name, err)
	}
	if d.Environment[EnvCluster] != in.Environment[EnvCluster] || d.Environment[EnvGeneration] != in.Environment[EnvGeneration] {
		return res, fmt.Errorf("%w: %s belongs to cluster %q generation %q", ErrNameTaken, name, d.Environment[EnvCluster], d.Environment[EnvGeneration])
	}
	res.ARN, res.Adopted = d.ARN, true
	c.log.Info("adopted existing training job", "job", name, "status", d.Status, "secondary", d.SecondaryStatus)
	return res, nil
}

// Stop asks SageMaker to stop a job. Stopping a job that has already ended
// or does not exist is not an error: teardown is idempotent.
func (c *Client) Stop(ctx context.Context, name string) error {
	err := c.api.call(ctx, "StopTrainingJob", trainingJobName{name}, nil)
	switch {
	case err == nil:
		c.log.Info("training job stop requested", "job", name)
		return nil
	case IsNotFound(err), isAlreadyStopped(err):
		c.log.Info("training job already ended", "job", name, "answer", err)
		return nil
	}
	return fmt.Errorf("stopping training job %s: %w", name, err)
}
