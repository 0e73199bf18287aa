package svc

import (
	"encoding/json"
	"sync"

	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	rh "github.com/rhq/rh"
)

// Dead-letter reason classes: the bounded label values of
// rh_dead_letters_total{reason_class}. The reason itself (free text) goes
// into the dead letter, never into a label.
const (
	// DeadMalformed: the message is not a valid event of the expected type.
	DeadMalformed = "malformed"
	// DeadMisrouted: a valid event on a subject it does not belong on.
	DeadMisrouted = "misrouted"
	// DeadRefused: a state report the registry refuses (breaks its rules).
	DeadRefused = "refused"
	// DeadExhausted: a worker retried the event MaxDeliver times and gave up.
	DeadExhausted = "exhausted"
	// DeadMaxDeliveries: the server gave up redelivering an event no worker
	// completed (a worker crashing on it); the registry dead-letters it.
	DeadMaxDeliveries = "max_deliveries"
)

// DeadLetterClasses lists every reason class.
var DeadLetterClasses = []string{DeadMalformed, DeadMisrouted, DeadRefused, DeadExhausted, DeadMaxDeliveries}

// DeadLetters registers rh_dead_letters_total on reg: messages moved to the
// dead-letter stream, by the stream and consumer they came from and the
// class of the reason. Every service that dead-letters registers it on its
// own (service-labelled) registerer; callers create their known series at
// zero with WithLabelValues.
func DeadLetters(reg prometheus.Registerer) *prometheus.CounterVec {
	return promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "rh_dead_letters_total",
		Help: "Messages moved to the dead-letter stream, by source stream, consumer and reason class (malformed, misrouted, refused, exhausted, max_deliveries).",
	}, []string{"stream", "consumer", "reason_class"})
}

// LagBuckets fit the time from an event's publication to the start of its
// handling (rh_worker_event_lag_seconds, rh_registry_report_lag_seconds):
// milliseconds on a bus that keeps up, minutes behind a busy consumer.
var LagBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}

// Request outcomes: the bounded label values of a service's request
// counter ("ok", or the rh error code the request was answered with).
var RequestOutcomes = []string{"ok", rh.EINVALID, rh.ENOTFOUND, rh.ECONFLICT, rh.EFORBIDDEN, rh.EUNAVAILABLE, rh.EINTERNAL}

// CountRequests wraps h so that each request's first answer is counted on
// c{op, outcome}: "ok" for a response, the rh error code for an error. A
// request left unanswered is not counted. The series of op are created at
// zero for every outcome.
func CountRequests(c *prometheus.CounterVec, op string, h micro.Handler) micro.Handler {
	for _, o := range RequestOutcomes {
		c.WithLabelValues(op, o)
	}
	return micro.HandlerFunc(func(r micro.Request) {
		h.Handle(&countedRequest{Request: r, count: func(outcome string) { c.WithLabelValues(op, outcome).Inc() }})
	})
}

// countedRequest counts the first answer to a request. A handler that
// detaches the request (Detach) answers through the copy, which reads the
// embedded request's fields: those answers are counted at Detach's caller
// (CountedDetach).
type countedRequest struct {
	micro.Request
	once  sync.Once
	count func(outcome string)
}

func (r *countedRequest) done(outcome string) { r.once.Do(func() { r.count(outcome) }) }

func (r *countedRequest) Respond(b []byte, opts ...micro.RespondOpt) error {
	r.done("ok")
	return r.Request.Respond(b, opts...)
}

func (r *countedRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	r.done("ok")
	return r.Request.RespondJSON(v, opts...)
}

func (r *countedRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	r.done(errorOutcome(data))
	return r.Request.Error(code, description, data, opts...)
}

// Counted marks r answered with outcome, when r is a counted request; a
// handler that answers through a detached copy calls it.
func Counted(r micro.Request, outcome string) {
	if cr, ok := r.(*countedRequest); ok {
		cr.done(outcome)
	}
}

// errorOutcome is the rh error code in an error body, bounded to the known
// codes.
func errorOutcome(data []byte) string {
	var e rh.Error
	if json.Unmarshal(data, &e) == nil {
		for _, o := range RequestOutcomes[1:] {
			if e.Code == o {
				return o
			}
		}
	}
	return rh.EINTERNAL
}
