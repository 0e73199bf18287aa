// Package events defines rh's wire contract on NATS: the CloudEvents 1.0
// envelope, the event types and their subjects, the JSON Schemas that let other
// languages take part, and the streams and buckets that carry them.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	rh "github.com/rhq/rh"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// Event types. The suffix is the data schema's version: a consumer refuses a
// version it does not know instead of guessing.
const (
	TypeCreate   = "dev.rh.cluster.create.v1"
	TypeTeardown = "dev.rh.cluster.teardown.v1"
	TypeUpdate   = "dev.rh.cluster.update.v1"
	TypeRefresh  = "dev.rh.cluster.refresh.v1"
	TypeState    = "dev.rh.cluster.state.v1"
)

// Ops are the lifecycle operations, the middle token of their subjects.
const (
	OpCreate   = "create"
	OpTeardown = "teardown"
	OpUpdate   = "update"
	OpRefresh  = "refresh"
)

var typeOfOp = map[string]string{OpCreate: TypeCreate, OpTeardown: TypeTeardown, OpUpdate: TypeUpdate, OpRefresh: TypeRefresh}

// ErrDecode is matched by every decoding error.
var ErrDecode = errors.New("events: cannot decode")

// DecodeError says which part of an event was wrong.
type DecodeError struct {
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("events: %s: %s", e.Field, e.Reason)
}

func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

// Envelope is a CloudEvents 1.0 event in structured JSON mode.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// ClusterIntent is the data of create, teardown, update and refresh events:
// what the registry asks the cluster's worker to make true.
type ClusterIntent struct {
	Cluster    string  `json:"cluster"`
	Generation int64   `json:"generation"`
	Spec       rh.Spec `json:"spec"`
}

// StateReport is the data of state events: what a worker observed.
type StateReport struct {
	Cluster    string            `json:"cluster"`
	Kind       rh.Kind           `json:"kind"`
	Generation int64             `json:"generation"`
	Phase      rh.Phase          `json:"phase"`
	Message    string            `json:"message,omitempty"`
	Nodes      []rh.Node         `json:"nodes,omitempty"`
	Info       map[string]string `json:"info,omitempty"`
	Worker     string            `json:"worker"`
	ObservedAt time.Time         `json:"observed_at"`
}

// Subjects.
const (
	SubjectPrefix = "rh.cluster."
	// StateSubjectPrefix prefixes rh.cluster.state.<kind>.<name>.
	StateSubjectPrefix = "rh.cluster.state."
	// DLQSubjectPrefix prefixes rh.dlq.<stream>.<consumer>.
	DLQSubjectPrefix = "rh.dlq."
)

// IntentSubject is rh.cluster.<op>.<kind>.
func IntentSubject(op string, kind rh.Kind) string { return SubjectPrefix + op + "." + string(kind) }

// WorkerSubjects are the filter subjects of the worker for kind.
func WorkerSubjects(kind rh.Kind) []string {
	return []string{IntentSubject(OpCreate, kind), IntentSubject(OpTeardown, kind), IntentSubject(OpUpdate, kind), IntentSubject(OpRefresh, kind)}
}

// StateSubject is rh.cluster.state.<kind>.<name>.
func StateSubject(kind rh.Kind, cluster string) string {
	return StateSubjectPrefix + string(kind) + "." + cluster
}

// IntentID is the deterministic id of a lifecycle event, so a retry of the same
// publish is dropped by the stream's duplicate window.
func IntentID(cluster, op string, generation int64) string {
	return fmt.Sprintf("%s:%s:%d", cluster, op, generation)
}

// NewIntent builds the envelope of a lifecycle event. Refresh events carry a
// tick in their id: each period's refresh is a new fact.
func NewIntent(source, op string, c *rh.Cluster, tick int64) (Envelope, error) {
	typ, ok := typeOfOp[op]
	if !ok {
		return Envelope{}, fmt.Errorf("events: unknown op %q", op)
	}
	id := IntentID(c.Name, op, c.Generation)
	if op == OpRefresh {
		id = fmt.Sprintf("%s:%d", id, tick)
	}
	return newEnvelope(source, typ, id, c.Name, ClusterIntent{Cluster: c.Name, Generation: c.Generation, Spec: c.Spec})
}

// NewState builds the envelope of a state report. Its id is random: two
// reports of the same phase at different times are different facts.
func NewState(source string, r StateReport) (Envelope, error) {
	return newEnvelope(source, TypeState, uuid.NewString(), r.Cluster, r)
}

func newEnvelope(source, typ, id, subject string, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode %s data: %w", typ, err)
	}
	return Envelope{
		SpecVersion: SpecVersion, ID: id, Source: source, Type: typ, Subject: subject,
		Time: time.Now().UTC(), DataContentType: "application/json", Data: raw,
	}, nil
}

// Decode parses an envelope strictly: unknown fields, missing required
// fields, an unknown type or version are errors that name what is wrong.
// It returns the envelope and its typed data (*ClusterIntent or *StateReport).
func Decode(b []byte) (Envelope, any, error) {
	env, err := decodeEnvelope(b)
	if err != nil {
		return env, nil, err
	}
	switch env.Type {
	case TypeCreate, TypeTeardown, TypeUpdate, TypeRefresh:
		var d ClusterIntent
		if err := strictUnmarshal(env.Data, &d); err != nil {
			return env, nil, &DecodeError{Field: "data", Reason: err.Error()}
		}
		if err := d.validate(env.Subject); err != nil {
			return env, nil, err
		}
		return env, &d, nil
	case TypeState:
		var d StateReport
		if err := strictUnmarshal(env.Data, &d); err != nil {
			return env, nil, &DecodeError{Field: "data", Reason: err.Error()}
		}
		if err := d.validate(env.Subject); err != nil {
			return env, nil, err
		}
		return env, &d, nil
	}
	if base, _, ok := cutVersion(env.Type); ok && knownBase(base) {
		return env, nil, &DecodeError{Field: "type", Reason: fmt.Sprintf("%q: unsupported version of %s", env.Type, base)}
	}
	return env, nil, &DecodeError{Field: "type", Reason: fmt.Sprintf("%q is not an rh event type", env.Type)}
}

// decodeEnvelope parses and checks the CloudEvents envelope every rh event
// shares.
func decodeEnvelope(b []byte) (Envelope, error) {
	var env Envelope
	if err := strictUnmarshal(b, &env); err != nil {
		return env, &DecodeError{Field: "envelope", Reason: err.Error()}
	}
	switch {
	case env.SpecVersion != SpecVersion:
		return env, &DecodeError{Field: "specversion", Reason: fmt.Sprintf("%q is not supported (want %q)", env.SpecVersion, SpecVersion)}
	case env.ID == "":
		return env, &DecodeError{Field: "id", Reason: "missing"}
	case env.Source == "":
		return env, &DecodeError{Field: "source", Reason: "missing"}
	case env.Type == "":
		return env, &DecodeError{Field: "type", Reason: "missing"}
	case env.Subject == "":
		return env, &DecodeError{Field: "subject", Reason: "missing"}
	case env.Time.IsZero():
		return env, &DecodeError{Field: "time", Reason: "missing"}
	case env.DataContentType != "application/json":
		return env, &DecodeError{Field: "datacontenttype", Reason: fmt.Sprintf("%q is not application/json", env.DataContentType)}
	case len(env.Data) == 0 || string(env.Data) == "null":
		return env, &DecodeError{Field: "data", Reason: "missing"}
	}
	return env, nil
}

func cutVersion(t string) (base, version string, ok bool) {
	i := strings.LastIndex(t, ".")
	if i < 0 || !strings.HasPrefix(t[i+1:], "v") {
		return t, "", false
	}
	return t[:i], t[i+1:], true
}

func knownBase(base string) bool {
	for _, t := range []string{TypeCreate, TypeTeardown, TypeUpdate, TypeRefresh, TypeState} {
		if b, _, _ := cutVersion(t); b == base {
			return true
		}
	}
	return false
}

func (d *ClusterIntent) validate(subject string) error {
	if err := rh.ValidateName(d.Cluster); err != nil {
		return &DecodeError{Field: "data.cluster", Reason: err.Error()}
	}
	if subject != d.Cluster {
		return &DecodeError{Field: "subject", Reason: fmt.Sprintf("%q does not match data.cluster %q", subject, d.Cluster)}
	}
	if d.Generation < 1 {
		return &DecodeError{Field: "data.generation", Reason: "must be at least 1"}
	}
	spec := d.Spec
	if err := spec.Validate(); err != nil {
		return &DecodeError{Field: "data.spec", Reason: err.Error()}
	}
	return nil
}

func (d *StateReport) validate(subject string) error {
	if err := rh.ValidateName(d.Cluster); err != nil {
		return &DecodeError{Field: "data.cluster", Reason: err.Error()}
	}
	if subject != d.Cluster {
		return &DecodeError{Field: "subject", Reason: fmt.Sprintf("%q does not match data.cluster %q", subject, d.Cluster)}
	}
	if _, err := rh.ParseKind(string(d.Kind)); err != nil {
		return &DecodeError{Field: "data.kind", Reason: err.Error()}
	}
	if d.Generation < 1 {
		return &DecodeError{Field: "data.generation", Reason: "must be at least 1"}
	}
	if !d.Phase.Valid() || d.Phase == rh.PhaseDefined {
		return &DecodeError{Field: "data.phase", Reason: fmt.Sprintf("%q is not a phase a worker reports", d.Phase)}
	}
	if d.Worker == "" {
		return &DecodeError{Field: "data.worker", Reason: "missing"}
	}
	if d.ObservedAt.IsZero() {
		return &DecodeError{Field: "data.observed_at", Reason: "missing"}
	}
	return nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Marshal encodes an envelope.
func (e Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }
