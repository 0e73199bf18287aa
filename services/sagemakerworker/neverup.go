package sagemakerworker

import (
	"fmt"
	"strings"

	"github.com/rhq/rh/services/sagemakerworker/sm"
)

// LogGroup is the CloudWatch log group of every SageMaker training job; each
// instance writes the stream <job>/algo-<n>-<container start, epoch seconds>.
const LogGroup = "/aws/sagemaker/TrainingJobs"

// reachedTraining reports whether a job ever entered the Training secondary
// status: the only time a keep-alive job's nodes run sshd and can be reached.
func reachedTraining(d *sm.JobDescription) bool {
	for _, t := range d.Transitions {
		if t.Status == "Training" {
			return true
		}
	}
	return false
}

// neverCameUp reports whether a compute backend's job ended (Completed or
// Stopped) before it was ever reachable: that is not a job that completed,
// but a cluster that never came up.
func neverCameUp(rec *jobRecord, d *sm.JobDescription) bool {
	return !rec.Estimator && rec.State != stateUp && !reachedTraining(d)
}

// neverUpMessage says that the cluster never came up, why when SageMaker
// said (FailureReason, the secondary statuses' messages), and where its logs
// are, with the command that shows them.
func neverUpMessage(job, region string, d *sm.JobDescription) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the cluster never came up: training job %s ended %s before reaching Training, so its nodes were never reachable", job, d.Status)
	var said []string
	if d.FailureReason != "" {
		said = append(said, d.FailureReason)
	}
	for _, t := range d.Transitions {
		if t.Message != "" {
			said = append(said, t.Status+": "+t.Message)
		}
	}
	if len(said) > 0 {
		b.WriteString("; SageMaker said: " + strings.Join(said, "; "))
	}
	fmt.Fprintf(&b, "; logs (if its instances started): CloudWatch log group %s, streams %s/algo-<n>-<epoch> (aws logs tail %s --log-stream-name-prefix %s/ --region %s)",
		LogGroup, job, LogGroup, job, region)
	return b.String()
}
