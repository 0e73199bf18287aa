package events

import (
	"fmt"
	"strings"

	rh "github.com/rhq/rh"
)

// Event intake: systems that speak only events (a CI pipeline, a scheduler
// holding a NATS client) publish a cluster request to
// rh.intake.<their nkey> (auth.IntakeSubject); the
// registry applies it once per (publisher, event id) and answers with
// outcome events on OutcomeSubject.
const (
	// TypeRequest is a publisher's request: create, up, teardown or delete.
	TypeRequest = "dev.rh.cluster.request.v1"
	// TypeOutcome is the registry's answer to a request: accepted, refused,
	// then each change of the cluster's state until it settles.
	TypeOutcome = "dev.rh.cluster.outcome.v1"

	// IntakeSubjectPrefix prefixes rh.intake.<publisher nkey>, where each
	// user publishes its requests (stream RH_INTAKE).
	IntakeSubjectPrefix = "rh.intake."
	// OutcomeSubjectPrefix prefixes rh.outcome.<publisher>.<cluster>.
	OutcomeSubjectPrefix = "rh.outcome."

	// StreamIntake captures intake requests, so none is lost while no
	// registry runs.
	StreamIntake = "RH_INTAKE"
	// BucketIntake remembers each applied request by publisher and event
	// id: exactly once beyond the stream's duplicate window.
	BucketIntake = "rh_intake"
)

// Request ops.
const (
	RequestCreate   = "create"
	RequestUp       = "up"
	RequestTeardown = "teardown"
	RequestDelete   = "delete"
)

// RequestOps lists the ops a request may carry.
var RequestOps = []string{RequestCreate, RequestUp, RequestTeardown, RequestDelete}

// ClusterRequest is the data of a request event. It never carries secrets:
// requests are stored in a stream and may be read back.
type ClusterRequest struct {
	Op      string `json:"op"`
	Cluster string `json:"cluster"`
	// Spec is required by create and refused by every other op.
	Spec *rh.Spec `json:"spec,omitempty"`
	// NoUp records a create without launching it (phase Defined).
	NoUp bool `json:"no_up,omitempty"`
	// Force deletes a cluster that may have machines left (delete only).
	Force bool `json:"force,omitempty"`
}

// Outcome results.
const (
	OutcomeAccepted = "accepted" // applied; state changes follow unless Done
	OutcomeRefused  = "refused"  // nothing changed; Code and Reason say why
	OutcomeState    = "state"    // the cluster's phase or message changed
)

// Outcome is the data of an outcome event.
type Outcome struct {
	// RequestID is the id of the request event this answers.
	RequestID string `json:"request_id"`
	Op        string `json:"op,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
	Result    string `json:"result"`
	// Code (an rh error code) and Reason are set on refusals.
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Phase, Message and Generation describe the cluster as of this outcome.
	Phase      rh.Phase `json:"phase,omitempty"`
	Message    string   `json:"message,omitempty"`
	Generation int64    `json:"generation,omitempty"`
	// Done is set on the last outcome of a request: the cluster settled,
	// or nothing more will be said about it.
	Done bool `json:"done,omitempty"`
	// Duplicate is set when the request was seen before: this repeats the
	// answer it got, and nothing was applied again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// MaxRequestIDLen bounds a request's event id.
const MaxRequestIDLen = 256

// DecodeRequest parses a request event strictly, like Decode: unknown
// fields, a missing field, another type or version, or data that breaks a
// rule are errors naming the field. The spec's own rules (kind fields and
// values) are left to the registry, which answers them with a refusal.
func DecodeRequest(b []byte) (Envelope, *ClusterRequest, error) {
	env, err := decodeEnvelope(b)
	if err != nil {
		return env, nil, err
	}
	if len(env.ID) > MaxRequestIDLen {
		return env, nil, &DecodeError{Field: "id", Reason: fmt.Sprintf("is %d bytes; the limit is %d", len(env.ID), MaxRequestIDLen)}
	}
	if env.Type != TypeRequest {
		if base, _, ok := cutVersion(env.Type); ok && base == strings.TrimSuffix(TypeRequest, ".v1") {
			return env, nil, &DecodeError{Field: "type", Reason: fmt.Sprintf("%q: unsupported version of %s", env.Type, base)}
		}
		return env, nil, &DecodeError{Field: "type", Reason: fmt.Sprintf("%q is not %s", env.Type, TypeRequest)}
	}
	var d ClusterRequest
	if err := strictUnmarshal(env.Data, &d); err != nil {
		return env, nil, &DecodeError{Field: "data", Reason: err.Error()}
	}
	if err := d.validate(env.Subject); err != nil {
		return env, nil, err
	}
	return env, &d, nil
}

func (d *ClusterRequest) validate(subject string) error {
	known := false
	for _, op := range RequestOps {
		known = known || d.Op == op
	}
	switch {
	case !known:
		return &DecodeError{Field: "data.op", Reason: fmt.Sprintf("%q is not one of %s", d.Op, strings.Join(RequestOps, ", "))}
	case rh.ValidateName(d.Cluster) != nil:
		return &DecodeError{Field: "data.cluster", Reason: rh.ValidateName(d.Cluster).Error()}
	case subject != d.Cluster:
		return &DecodeError{Field: "subject", Reason: fmt.Sprintf("%q does not match data.cluster %q", subject, d.Cluster)}
	case d.Op == RequestCreate && d.Spec == nil:
		return &DecodeError{Field: "data.spec", Reason: "required by create"}
	case d.Op != RequestCreate && d.Spec != nil:
		return &DecodeError{Field: "data.spec", Reason: "only create takes a spec"}
	case d.Op != RequestCreate && d.NoUp:
		return &DecodeError{Field: "data.no_up", Reason: "only create takes no_up"}
	case d.Op != RequestDelete && d.Force:
		return &DecodeError{Field: "data.force", Reason: "only delete takes force"}
	}
	return nil
}

// OutcomeSubject is rh.outcome.<publisher>.<cluster>, where publisher is
// the publisher's NATS public key: each user may subscribe only to its own
// (a key is one token, unlike a user name, which may hold dots).
func OutcomeSubject(publisher, cluster string) string {
	return OutcomeSubjectPrefix + publisher + "." + cluster
}

// NewOutcome builds an outcome envelope. Its id is the request's id and a
// sequence number, so a publisher can tell repeats apart.
func NewOutcome(source string, seq int, o Outcome) (Envelope, error) {
	subject := o.Cluster
	if subject == "" {
		subject = "-" // a request too malformed to name its cluster
	}
	return newEnvelope(source, TypeOutcome, fmt.Sprintf("%s#%d", o.RequestID, seq), subject, o)
}
