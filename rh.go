// Package rh is the domain of rh: named clusters over three kinds of hardware
// (machines you own, on-demand cloud machines, SageMaker instances), their
// specs, status and history, and the errors every layer shares. It imports no
// transport; services, the SDK and the CLI all speak in these types.
package rh

//go:generate sh -c "go run ./internal/gen/sminstances > sagemaker_instances.go"

import (
	"log/slog"
	"time"
)

// Kind is where a cluster's machines come from.
type Kind string

const (
	KindBYO       Kind = "byo"       // bring your own machines, reached over SSH
	KindOnDemand  Kind = "ondemand"  // cloud machines through SkyPilot
	KindSageMaker Kind = "sagemaker" // SageMaker training-job instances
)

// Kinds lists every kind, in the order users meet them.
var Kinds = []Kind{KindBYO, KindOnDemand, KindSageMaker}

// Phase is a cluster's coarse state.
type Phase string

const (
	// PhaseDefined: recorded and validated (create --no-up), never launched;
	// `up` launches it. Only the registry sets it; no worker reports it.
	PhaseDefined      Phase = "Defined"
	PhasePending      Phase = "Pending"
	PhaseProvisioning Phase = "Provisioning"
	PhaseUp           Phase = "Up"
	PhaseDegraded     Phase = "Degraded"
	PhaseStopped      Phase = "Stopped"
	PhaseTearingDown  Phase = "TearingDown"
	PhaseTerminated   Phase = "Terminated"
	PhaseFailed       Phase = "Failed"
)

// Phases lists every phase.
var Phases = []Phase{PhaseDefined, PhasePending, PhaseProvisioning, PhaseUp, PhaseDegraded, PhaseStopped, PhaseTearingDown, PhaseTerminated, PhaseFailed}

// Rank orders phases within one incarnation of a cluster: a report may not move
// a cluster to a lower rank (an "Up" that arrives after "Terminated" is old news).
// Phases of equal rank may alternate (Up ⇄ Degraded).
func (p Phase) Rank() int {
	switch p {
	case PhaseDefined, PhasePending:
		return 0
	case PhaseProvisioning:
		return 1
	case PhaseUp, PhaseDegraded, PhaseStopped:
		return 2
	case PhaseTearingDown:
		return 3
	case PhaseTerminated, PhaseFailed:
		return 4
	}
	return -1
}

// Valid reports whether p is a known phase.
func (p Phase) Valid() bool { return p.Rank() >= 0 }

// Final reports whether nothing more will happen without a new request.
func (p Phase) Final() bool { return p == PhaseTerminated || p == PhaseFailed || p == PhaseDefined }

// Live reports whether machines may exist and are worth refreshing.
func (p Phase) Live() bool {
	switch p {
	case PhaseProvisioning, PhaseUp, PhaseDegraded, PhaseStopped, PhaseTearingDown:
		return true
	}
	return false
}

// Spec is what the user asked for. Exactly one of the kind sections is set,
// the one that Kind names. Secrets are never part of a spec.
type Spec struct {
	Kind Kind `json:"kind"`
	// AutostopMins tears the cluster down after this many idle minutes; -1 never.
	// Nil in a request means the default (-1); a stored spec always has it.
	AutostopMins *int           `json:"autostop_mins,omitempty"`
	BYO          *BYOSpec       `json:"byo,omitempty"`
	OnDemand     *OnDemandSpec  `json:"ondemand,omitempty"`
	SageMaker    *SageMakerSpec `json:"sagemaker,omitempty"`
}

// Autostop returns the effective autostop minutes.
func (s Spec) Autostop() int {
	if s.AutostopMins == nil {
		return -1
	}
	return *s.AutostopMins
}

// BYOSpec describes machines the user already has.
type BYOSpec struct {
	// IPs are addresses or host names; the first is the head node.
	IPs                   []string `json:"ips"`
	SSHUser               string   `json:"ssh_user,omitempty"`
	SSHPort               int      `json:"ssh_port,omitempty"`
	ProxyCommand          string   `json:"proxy_command,omitempty"`
	JumpHost              string   `json:"jump_host,omitempty"` // [user@]host[:port]
	InsecureIgnoreHostKey bool     `json:"insecure_ignore_host_key,omitempty"`
	UseAgent              bool     `json:"use_agent,omitempty"`
	// HasKey and HasPassword record that a secret was stored, never the secret.
	HasKey      bool `json:"has_key,omitempty"`
	HasPassword bool `json:"has_password,omitempty"`
}

// OnDemandSpec describes cloud machines SkyPilot provisions.
type OnDemandSpec struct {
	InstanceType string `json:"instance_type"` // m5.xlarge, A100:4 or CPU:2+
	NumInstances int    `json:"num_instances,omitempty"`
	Provider     string `json:"provider,omitempty"` // aws|gcp|azure|lambda|kubernetes|cheapest
	Region       string `json:"region,omitempty"`
	UseSpot      bool   `json:"use_spot,omitempty"`
	ImageID      string `json:"image_id,omitempty"`
	Memory       string `json:"memory,omitempty"`    // GiB, "32" or "32+"
	DiskSize     int    `json:"disk_size,omitempty"` // GiB
	OpenPorts    []int  `json:"open_ports,omitempty"`
}

// SageMakerSpec describes a SageMaker cluster: a long-running training job.
type SageMakerSpec struct {
	Role               string `json:"role,omitempty"` // ARN or bare role name
	Profile            string `json:"profile,omitempty"`
	Region             string `json:"region,omitempty"`
	InstanceType       string `json:"instance_type,omitempty"` // ml.*
	NumInstances       int    `json:"num_instances,omitempty"`
	ImageURI           string `json:"image_uri,omitempty"`
	ConnectionWaitTime int    `json:"connection_wait_time,omitempty"` // seconds
	// Estimator is the content of an estimator file (YAML or JSON) when the
	// cluster runs a training workload rather than a bare compute backend.
	Estimator string `json:"estimator,omitempty"`
	JobName   string `json:"job_name,omitempty"`
}

// Secrets are credentials a cluster needs. They travel only in the create
// request and live in the secret store; they never enter events, logs or output.
type Secrets struct {
	SSHPrivateKey string `json:"ssh_private_key,omitempty"`
	Password      string `json:"password,omitempty"`
}

// Empty reports whether no secret is set.
func (s *Secrets) Empty() bool { return s == nil || (s.SSHPrivateKey == "" && s.Password == "") }

// String hides the secrets from fmt.
func (s Secrets) String() string { return "<redacted>" }

// LogValue hides the secrets from slog.
func (s Secrets) LogValue() slog.Value { return slog.StringValue("<redacted>") }

// Cluster is the record the registry keeps for one cluster.
type Cluster struct {
	Name string `json:"name"`
	Spec Spec   `json:"spec"`
	// Generation counts spec changes and up/teardown requests.
	Generation int64 `json:"generation"`
	// Incarnation is the generation of the last up or teardown request. Reports
	// about an older incarnation are stale: a late "Up" from before a teardown
	// must not revive the cluster. Spec changes (autostop) do not start one.
	Incarnation int64 `json:"incarnation"`
	// Intent is the last lifecycle event the registry published; it is published
	// again by the reconciler until a worker has observed it.
	Intent Intent `json:"intent"`
	// Owner is the user who created the cluster; Shares grant others access.
	// Status.Owner is something else: the worker that last reported.
	Owner  string            `json:"owner,omitempty"`
	Shares map[string]Access `json:"shares,omitempty"`
	// CreateRequestID is the request id of the create that made the record:
	// its owner's retry of that create is answered with the record.
	CreateRequestID string       `json:"create_request_id,omitempty"`
	Status          Status       `json:"status"`
	CreatedAt       time.Time    `json:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at"`
	History         []Transition `json:"history,omitempty"`
}

// ClusterSummary is what `list` shows of a cluster: enough for a table, small
// enough that ten thousand of them list in a blink. `get` gives the record.
type ClusterSummary struct {
	Name       string    `json:"name"`
	Kind       Kind      `json:"kind"`
	Owner      string    `json:"owner,omitempty"`
	Phase      Phase     `json:"phase"`
	Message    string    `json:"message,omitempty"`
	Nodes      int       `json:"nodes"`
	Generation int64     `json:"generation"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Summary returns the cluster's summary.
func (c *Cluster) Summary() ClusterSummary {
	return ClusterSummary{Name: c.Name, Kind: c.Spec.Kind, Owner: c.Owner, Phase: c.Status.Phase, Message: c.Status.Message,
		Nodes: len(c.Status.Nodes), Generation: c.Generation, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// Intent names an operation requested of the cluster's worker.
type Intent struct {
	Op         string    `json:"op"` // create, teardown, update
	Generation int64     `json:"generation"`
	At         time.Time `json:"at"`
}

// Status is what the workers observed.
type Status struct {
	Phase              Phase             `json:"phase"`
	Message            string            `json:"message,omitempty"`
	ObservedGeneration int64             `json:"observed_generation"`
	Nodes              []Node            `json:"nodes,omitempty"`
	Info               map[string]string `json:"info,omitempty"`
	Owner              string            `json:"owner,omitempty"`
	// ReportedAt is the worker's time of the last applied report; older reports are ignored.
	ReportedAt   time.Time `json:"reported_at,omitzero"`
	LastActivity time.Time `json:"last_activity,omitzero"`
}

// Node is one machine of a cluster, as the gateway reaches it.
type Node struct {
	Address         string `json:"address"`
	Port            int    `json:"port,omitempty"`
	User            string `json:"user,omitempty"`
	InternalAddress string `json:"internal_address,omitempty"`
	ProxyCommand    string `json:"proxy_command,omitempty"`
	Reachable       bool   `json:"reachable"`
	HostKey         string `json:"host_key,omitempty"` // SHA256 fingerprint recorded on first contact
	Facts           *Facts `json:"facts,omitempty"`
	Message         string `json:"message,omitempty"`
}

// Facts describe a node's hardware and OS.
type Facts struct {
	OS          string `json:"os,omitempty"`
	Kernel      string `json:"kernel,omitempty"`
	Arch        string `json:"arch,omitempty"`
	CPUs        int    `json:"cpus,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	GPUs        []GPU  `json:"gpus,omitempty"`
}

// GPU is one accelerator on a node.
type GPU struct {
	Name        string `json:"name"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
}

// Transition is one entry of a cluster's history.
type Transition struct {
	At         time.Time `json:"at"`
	Generation int64     `json:"generation"`
	From       Phase     `json:"from,omitempty"`
	To         Phase     `json:"to"`
	Message    string    `json:"message,omitempty"`
	Source     string    `json:"source"` // "registry" or the reporting worker
}

// MaxHistory bounds the transitions kept in a record.
const MaxHistory = 200
