// Package worker is the event loop every rh worker shares: it consumes the
// lifecycle intents of one kind from RH_EVENTS, holds the lease while the
// handler works, retries what failed for a reason that may pass, dead-letters
// what cannot succeed, and publishes the handler's state reports.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/svc"
)

// Handler does the work an intent asks for and reports what it observed
// through r. Returning nil acks the event. An error wrapped by Permanent ends
// the cluster Failed with its message; any other error is retried with backoff,
// and after the last delivery the event is dead-lettered and the cluster Failed.
//
// Handlers must be idempotent: an event may be delivered again after a crash.
type Handler func(ctx context.Context, op string, in *events.ClusterIntent, r *Reporter) error

// Config configures a worker's consumer.
type Config struct {
	Kind rh.Kind
	// Durable is the consumer name, shared by every replica of this worker.
	Durable string
	// ID names this process in reports (owner of the cluster).
	ID string
	// AckWait is the lease on an event (default 5 s): the loop renews it
	// with InProgress every third of it while the event is handled or waits
	// behind another of its cluster's events, so a worker that dies is
	// replaced within about AckWait. A live worker too slow to renew in time
	// is safe: the event's second holder finds the cluster's record owned by
	// a worker whose heartbeat is fresh, and waits (Records.Acquire).
	AckWait time.Duration
	// Heartbeat is how often a Host rewrites the records its running
	// operations own (default 2 s); StaleAfter is how old an owner's last
	// write must be before another worker adopts its operation (default
	// 3 Heartbeats). A live owner is displaced only if it cannot write for
	// all of StaleAfter.
	Heartbeat  time.Duration
	StaleAfter time.Duration
	// MaxDeliver bounds attempts before dead-lettering.
	MaxDeliver int
	// Concurrency bounds events handled at once (different clusters run in parallel;
	// one cluster's events run one at a time, in order).
	Concurrency int
	// RetryBase is the first retry delay; later ones double, with jitter.
	RetryBase time.Duration
	Logger    *slog.Logger
	Registry  prometheus.Registerer
}

func (c *Config) defaults() {
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = 3 * c.Heartbeat
	}
	// An owner must get at least two beats into the stale period, or a live
	// one would be displaced between beats.
	c.StaleAfter = max(c.StaleAfter, 2*c.Heartbeat)
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 8
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.RetryBase == 0 {
		c.RetryBase = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.ID == "" {
		c.ID = c.Durable
	}
}

// Takeover defaults: a dead worker's event comes back within DefaultAckWait
// and its operation is adopted once its heartbeat is 3×DefaultHeartbeat old,
// while a live owner needs only one write in that time to keep it.
const (
	DefaultAckWait   = 5 * time.Second
	DefaultHeartbeat = 2 * time.Second
)

// ErrPermanent marks an error that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() []error      { return []error{e.err, ErrPermanent} }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent wraps err so the loop fails the cluster instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Worker runs the loop.
type Worker struct {
	leases  *svc.Leases
	cfg     Config
	js      jetstream.JetStream
	handler Handler
	records jetstream.KeyValue
	metrics *metrics

	mu       sync.Mutex
	clusters map[string]*clusterSlot
}

type clusterSlot struct {
	mu      sync.Mutex // serialises one cluster's events
	waiting int
	cancel  context.CancelCauseFunc // cancels the running create when a teardown arrives
	op      string
}

type metrics struct {
	events      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lag         prometheus.Observer
	inflight    prometheus.Gauge
	deadLetters *prometheus.CounterVec
}

// Event outcomes: the label values of rh_worker_events_total{outcome}.
var eventOutcomes = []string{"acked", "retried", "dead_lettered", "stale", "failed", "superseded", "taken_over"}

// intentTypes are the event types a worker handles; any other type (a
// malformed or misrouted message) is counted as "unknown", so whoever can
// publish cannot grow the label set.
var intentTypes = []string{events.TypeCreate, events.TypeTeardown, events.TypeUpdate, events.TypeRefresh}

func eventTypeLabel(t string) string {
	for _, k := range intentTypes {
		if t == k {
			return t
		}
	}
	return "unknown"
}

// HandleBuckets fit one event's handling: milliseconds for a stale or
// refresh event, up to an hour and more for a cloud create handled until Up.
var HandleBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200}

func newMetrics(reg prometheus.Registerer, kind rh.Kind, durable string) *metrics {
	f := promauto.With(reg)
	k := prometheus.Labels{"kind": string(kind)}
	m := &metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_worker_events_total", Help: "Lifecycle events consumed, by type (unknown for a type that is not an intent) and outcome (acked, retried, dead_lettered, stale, failed, superseded, taken_over).",
			ConstLabels: k,
		}, []string{"event_type", "outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rh_worker_handle_duration_seconds", Help: "Time to handle one lifecycle event (a create is handled until Up or failed).",
			Buckets: HandleBuckets, ConstLabels: k,
		}, []string{"event_type"}),
		lag: f.NewHistogram(prometheus.HistogramOpts{
			Name: "rh_worker_event_lag_seconds", Help: "Time from an event's publication to the start of its handling, per delivery.",
			Buckets: svc.LagBuckets, ConstLabels: k,
		}),
		inflight:    f.NewGauge(prometheus.GaugeOpts{Name: "rh_worker_events_in_flight", Help: "Events being handled now.", ConstLabels: k}),
		deadLetters: svc.DeadLetters(reg),
	}
	for _, t := range intentTypes {
		for _, o := range eventOutcomes {
			m.events.WithLabelValues(t, o)
		}
		m.duration.WithLabelValues(t)
	}
	m.events.WithLabelValues("unknown", "dead_lettered")
	for _, c := range []string{svc.DeadMalformed, svc.DeadMisrouted, svc.DeadExhausted} {
		m.deadLetters.WithLabelValues(events.StreamEvents, durable, c)
	}
	return m
}

// ErrSuperseded is the cancel cause of a create that a teardown overtook.
var ErrSuperseded = errors.New("superseded by a teardown")

// ErrTakenOver is the cancel cause of an operation whose record another
// worker adopted (this one stalled past the stale period). The event is left
// alone, neither acked nor retried: the adopter holds it now.
var ErrTakenOver = errors.New("taken over by another worker")

// New prepares a worker; Run starts it.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, h Handler) (*Worker, error) {
	cfg.defaults()
	kv, err := js.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		return nil, fmt.Errorf("worker %s: cluster records: %w", cfg.Durable, err)
	}
	return &Worker{
		cfg: cfg, js: js, handler: h, records: kv, clusters: map[string]*clusterSlot{},
		metrics: newMetrics(cfg.Registry, cfg.Kind, cfg.Durable),
	}, nil
}

// Run consumes until ctx ends, then gives running handlers a short grace
// before interrupting them (their events are redelivered).
func (w *Worker) Run(ctx context.Context) error {
	l, err := w.start(ctx)
	if err != nil {
		return err
	}
	<-ctx.Done()
	l.stop(5 * time.Second)
	return nil
}

// Start begins consuming and returns once the consumer exists, so a service
// learns at once whether its loop could start. stop ends consuming and
// interrupts running handlers without a grace; their events are redelivered.
func (w *Worker) Start(ctx context.Context) (stop func(), err error) {
	l, err := w.start(ctx)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { l.stop(0) }) }, nil
}

// loop is a consuming worker: its consumer and its running handlers.
type loop struct {
	cc             jetstream.ConsumeContext
	wg             *sync.WaitGroup
	cancelHandlers context.CancelFunc
}

func (w *Worker) start(ctx context.Context) (*loop, error) {
	cons, err := w.js.CreateOrUpdateConsumer(ctx, events.StreamEvents, jetstream.ConsumerConfig{
		Durable:        w.cfg.Durable,
		Description:    fmt.Sprintf("rh %s worker", w.cfg.Kind),
		FilterSubjects: events.WorkerSubjects(w.cfg.Kind),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        w.cfg.AckWait,
		MaxDeliver:     w.cfg.MaxDeliver,
		MaxAckPending:  w.cfg.Concurrency,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("worker %s: consumer: %w", w.cfg.Durable, err)
	}
	wg := &sync.WaitGroup{}
	sem := make(chan struct{}, w.cfg.Concurrency)
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	// The lease keeper outlives the handlers: it ends with handlerCtx, which
	// stop cancels once they returned (or to interrupt them).
	w.leases = svc.NewLeases(w.cfg.AckWait)
	go w.leases.Keep(handlerCtx)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.handle(handlerCtx, m)
		}()
	}, jetstream.PullMaxMessages(w.cfg.Concurrency))
	if err != nil {
		cancelHandlers()
		return nil, fmt.Errorf("worker %s: consume: %w", w.cfg.Durable, err)
	}
	return &loop{cc: cc, wg: wg, cancelHandlers: cancelHandlers}, nil
}

// stop drains the consumer, waits up to grace for running handlers, then
// interrupts the rest and waits for them to return.
func (l *loop) stop(grace time.Duration) {
	defer l.cancelHandlers()
	l.cc.Drain()
	<-l.cc.Closed()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
		}
	}
	l.cancelHandlers()
	<-done
}

func (w *Worker) slot(cluster string) *clusterSlot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.clusters[cluster]
	if !ok {
		s = &clusterSlot{}
		w.clusters[cluster] = s
	}
	s.waiting++
	return s
}

func (w *Worker) release(cluster string, s *clusterSlot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s.waiting--
	if s.waiting == 0 {
		delete(w.clusters, cluster)
	}
}

func (w *Worker) handle(ctx context.Context, m jetstream.Msg) {
	log := w.cfg.Logger.With("worker", w.cfg.Durable, "subject", m.Subject())
	md, err := m.Metadata()
	if err != nil {
		log.Error("message without metadata", "err", err)
		_ = m.Term()
		return
	}
	if lag := time.Since(md.Timestamp); lag >= 0 {
		w.metrics.lag.Observe(lag.Seconds())
	}
	env, data, err := events.Decode(m.Data())
	if err != nil {
		w.deadLetter(ctx, m, md, svc.DeadMalformed, "malformed event: "+err.Error())
		w.count(env.Type, "dead_lettered")
		return
	}
	in, ok := data.(*events.ClusterIntent)
	if !ok {
		w.deadLetter(ctx, m, md, svc.DeadMalformed, fmt.Sprintf("event type %s does not belong on %s", env.Type, m.Subject()))
		w.count(env.Type, "dead_lettered")
		return
	}
	if in.Spec.Kind != w.cfg.Kind {
		w.deadLetter(ctx, m, md, svc.DeadMisrouted, fmt.Sprintf("cluster kind %s on the %s worker's subject", in.Spec.Kind, w.cfg.Kind))
		w.count(env.Type, "dead_lettered")
		return
	}
	op := opOf(env.Type)
	log = log.With("cluster", in.Cluster, "op", op, "generation", in.Generation, "delivery", md.NumDelivered)

	// Hold the lease from here: waiting behind another of the cluster's
	// events must not let this one's lapse and come round again.
	w.leases.Add(m)
	defer w.leases.Done(m)
	slot := w.slot(in.Cluster)
	defer w.release(in.Cluster, slot)
	if op == events.OpTeardown {
		// A teardown overtakes a running create: cancel it rather than wait for a
		// launch nobody wants any more.
		w.mu.Lock()
		if slot.cancel != nil && slot.op == events.OpCreate {
			slot.cancel(ErrSuperseded)
		}
		w.mu.Unlock()
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()

	if stale, why := w.stale(ctx, in); stale {
		log.Debug("skipping stale event", "reason", why)
		_ = m.DoubleAck(ctx)
		w.count(env.Type, "stale")
		return
	}

	hctx, cancel := context.WithCancelCause(ctx)
	w.mu.Lock()
	slot.cancel, slot.op = cancel, op
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		slot.cancel, slot.op = nil, ""
		w.mu.Unlock()
		cancel(nil)
	}()

	w.metrics.inflight.Inc()
	start := time.Now()
	r := &Reporter{js: w.js, worker: w.cfg.ID, kind: w.cfg.Kind, cluster: in.Cluster, generation: in.Generation}
	err = w.handler(hctx, op, in, r)
	w.metrics.duration.WithLabelValues(eventTypeLabel(env.Type)).Observe(time.Since(start).Seconds())
	w.metrics.inflight.Dec()

	switch {
	case err == nil:
		if aerr := m.DoubleAck(ctx); aerr != nil {
			log.Warn("ack failed; the event will be redelivered", "err", aerr)
		}
		w.count(env.Type, "acked")
	case errors.Is(err, ErrTakenOver):
		log.Warn("another worker adopted this operation; leaving the event to it", "err", err)
		w.count(env.Type, "taken_over")
	case errors.Is(context.Cause(hctx), ErrSuperseded):
		log.Info("create overtaken by a teardown")
		_ = m.DoubleAck(ctx)
		w.count(env.Type, "superseded")
	case errors.Is(err, ErrPermanent):
		log.Warn("event failed", "err", err)
		if rerr := r.Report(ctx, rh.PhaseFailed, err.Error(), nil, nil); rerr != nil {
			log.Error("cannot report failure; retrying the event", "err", rerr)
			_ = m.NakWithDelay(w.cfg.RetryBase)
			return
		}
		_ = m.DoubleAck(ctx)
		w.count(env.Type, "failed")
	case ctx.Err() != nil:
		// Shutting down: leave it for the next process.
		_ = m.Nak()
	case int(md.NumDelivered) >= w.cfg.MaxDeliver:
		reason := fmt.Sprintf("gave up after %d attempts: %v", md.NumDelivered, err)
		log.Error("event exhausted its deliveries", "err", err)
		if op != events.OpRefresh {
			_ = r.Report(ctx, rh.PhaseFailed, reason, nil, nil)
		}
		w.deadLetter(ctx, m, md, svc.DeadExhausted, reason)
		w.count(env.Type, "dead_lettered")
	default:
		delay := backoff(w.cfg.RetryBase, int(md.NumDelivered))
		log.Warn("event failed; retrying", "err", err, "in", delay)
		_ = m.NakWithDelay(delay)
		w.count(env.Type, "retried")
	}
}

// stale reports whether a newer up or teardown (or a delete) made the event moot.
func (w *Worker) stale(ctx context.Context, in *events.ClusterIntent) (bool, string) {
	c, _, err := events.LoadCluster(ctx, w.records, in.Cluster)
	if rh.ErrorCode(err) == rh.ENOTFOUND {
		return true, "cluster deleted"
	}
	if err != nil {
		return false, "" // cannot tell: do the work, handlers are idempotent
	}
	if in.Generation < c.Incarnation {
		return true, fmt.Sprintf("generation %d is older than incarnation %d", in.Generation, c.Incarnation)
	}
	return false, ""
}

func (w *Worker) deadLetter(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, class, reason string) {
	stored, err := events.DeadLetter(ctx, w.js, events.StreamEvents, w.cfg.Durable, m.Subject(), md.Sequence.Stream, m.Data(), reason)
	if err != nil {
		w.cfg.Logger.Error("cannot dead-letter; will retry", "err", err)
		_ = m.NakWithDelay(w.cfg.RetryBase)
		return
	}
	// An operator reading the log should see every event that left the
	// stream without being carried out.
	w.cfg.Logger.Warn("event dead-lettered", "subject", m.Subject(), "stream_seq", md.Sequence.Stream,
		"deliveries", md.NumDelivered, "reason", reason)
	if stored { // a redelivered dead letter is counted once
		w.metrics.deadLetters.WithLabelValues(events.StreamEvents, w.cfg.Durable, class).Inc()
	}
	_ = m.Term()
}

func (w *Worker) count(eventType, outcome string) {
	w.metrics.events.WithLabelValues(eventTypeLabel(eventType), outcome).Inc()
}

func opOf(eventType string) string {
	switch eventType {
	case events.TypeCreate:
		return events.OpCreate
	case events.TypeTeardown:
		return events.OpTeardown
	case events.TypeUpdate:
		return events.OpUpdate
	case events.TypeRefresh:
		return events.OpRefresh
	}
	return ""
}

func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 8)
	return d/2 + rand.N(d/2+1)
}

// Reporter publishes state reports for the event being handled.
type Reporter struct {
	js         jetstream.JetStream
	worker     string
	kind       rh.Kind
	cluster    string
	generation int64
}

// NewReporter makes a reporter outside the loop (tests, other tools).
func NewReporter(js jetstream.JetStream, worker string, kind rh.Kind, cluster string, generation int64) *Reporter {
	return &Reporter{js: js, worker: worker, kind: kind, cluster: cluster, generation: generation}
}

// Report publishes what the worker observed now.
func (r *Reporter) Report(ctx context.Context, phase rh.Phase, message string, nodes []rh.Node, info map[string]string) error {
	rep := events.StateReport{
		Cluster: r.cluster, Kind: r.kind, Generation: r.generation, Phase: phase, Message: message,
		Nodes: nodes, Info: info, Worker: r.worker, ObservedAt: time.Now().UTC(),
	}
	env, err := events.NewState(r.worker, rep)
	if err != nil {
		return err
	}
	_, err = events.Publish(ctx, r.js, events.StateSubject(r.kind, r.cluster), env)
	return err
}

// Cluster is the cluster the reporter reports on.
func (r *Reporter) Cluster() string { return r.cluster }

// Generation is the generation the reports carry.
func (r *Reporter) Generation() int64 { return r.generation }
