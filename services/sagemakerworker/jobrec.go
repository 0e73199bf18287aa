package sagemakerworker

import "github.com/rhq/rh/internal/worker"

// Job record states.
const (
	// stateLaunching: this generation's job is named and its create may
	// have reached AWS (a crash in between leaves only this trace, and
	// Launch adopts the job on the next attempt).
	stateLaunching = "launching"
	// stateLaunched: AWS answered the create (or it was adopted).
	stateLaunched = "launched"
	// stateUp: the job reached Training and the cluster was reported Up.
	stateUp = "up"
)

// jobRecord is the value of a cluster's key in rh_sm_jobs. A teardown or
// refresh, whose intents carry their own generation, finds the job whatever
// generation started it.
type jobRecord struct {
	Generation   int64  `json:"generation"`
	Job          string `json:"job"`
	ARN          string `json:"arn,omitempty"`
	State        string `json:"state"`
	Estimator    bool   `json:"estimator,omitempty"`
	InstanceType string `json:"instance_type,omitempty"`
	// RoleARN is the execution role the job runs as, as resolved from the
	// spec's role name, the worker's default or the SageMaker defaults.
	RoleARN string `json:"role_arn,omitempty"`
	// Autostop is the idle limit last written to the nodes' autostop_mins
	// file through the gateway ("" while the job's environment value holds).
	Autostop  string `json:"autostop,omitempty"`
	Instances int    `json:"instances,omitempty"`
	worker.Stamp
}
