package registry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/svc"
)

// Provision outcomes: the label values of rh_registry_provision_duration_seconds.
const (
	provisionUp     = "up"
	provisionFailed = "failed"
)

// ProvisionBuckets fit a create's time to Up or Failed: seconds on the
// simulators and for byo, minutes for cloud launches, up to two hours.
var ProvisionBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200}

// metrics have bounded labels only, each of whose values is known at start
// and created then at zero: the first increment of a series is then a
// change increase() and rate() can see.
type metrics struct {
	requests    *prometheus.CounterVec
	published   *prometheus.CounterVec
	reports     *prometheus.CounterVec
	casRetries  prometheus.Counter
	reportLag   prometheus.Histogram
	provision   *prometheus.HistogramVec
	clusters    *prometheus.GaugeVec
	oldest      *prometheus.GaugeVec
	deadLetters *prometheus.CounterVec
	watches     prometheus.Counter
	watching    prometheus.Gauge
}

// reportOutcomes are the label values of rh_registry_reports_total.
var reportOutcomes = []string{OutcomeApplied, OutcomeStale, OutcomeOutOfDate, OutcomeDuplicate, OutcomeUnknown, "retried", "dead_lettered"}

// intentTypes are the event types the registry publishes.
var intentTypes = []string{events.TypeCreate, events.TypeTeardown, events.TypeUpdate, events.TypeRefresh}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_registry_requests_total",
			Help: "Registry API requests answered, by operation and outcome (ok or the rh error code: invalid, not_found, conflict, forbidden, unavailable, internal).",
		}, []string{"op", "outcome"}),
		published: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_registry_events_published_total", Help: "Lifecycle events published, by type.",
		}, []string{"event_type"}),
		reports: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_registry_reports_total", Help: "Worker state reports consumed, by outcome (applied, stale, out_of_order, duplicate, unknown_cluster, retried, dead_lettered).",
		}, []string{"outcome"}),
		casRetries: f.NewCounter(prometheus.CounterOpts{Name: "rh_registry_cas_retries_total", Help: "Record writes retried after losing a compare-and-set."}),
		reportLag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "rh_registry_report_lag_seconds",
			Help:    "Time from a worker's state report's publication to the start of its applying, per delivery (the registry's counterpart of rh_worker_event_lag_seconds).",
			Buckets: svc.LagBuckets,
		}),
		provision: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rh_registry_provision_duration_seconds",
			Help:    "Time from an up or create request to the cluster's first Up (outcome up) or to its failing first (outcome failed), by kind.",
			Buckets: ProvisionBuckets,
		}, []string{"kind", "outcome"}),
		clusters: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rh_registry_clusters", Help: "Clusters by phase and kind, as of the last reconcile.",
		}, []string{"phase", "kind"}),
		oldest: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rh_registry_oldest_cluster_age_seconds",
			Help: "Time the longest-waiting cluster in each non-final phase has been in it, as of the last reconcile (0: none); a stuck cluster shows here.",
		}, []string{"phase"}),
		deadLetters: svc.DeadLetters(reg),
		watches:     f.NewCounter(prometheus.CounterOpts{Name: "rh_registry_watch_streams_total", Help: "Record watch streams started (a long wait is a chain of bounded streams)."}),
		watching:    f.NewGauge(prometheus.GaugeOpts{Name: "rh_registry_watch_streams", Help: "Record watch streams open now."}),
	}
	for _, t := range intentTypes {
		m.published.WithLabelValues(t)
	}
	for _, o := range reportOutcomes {
		m.reports.WithLabelValues(o)
	}
	for _, k := range rh.Kinds {
		m.provision.WithLabelValues(string(k), provisionUp)
		m.provision.WithLabelValues(string(k), provisionFailed)
	}
	m.setClusters(nil, time.Time{})
	// The registry's own consumer (state reports) and the server's give-ups
	// on the workers' consumers, whose names the registry knows.
	for _, c := range []string{svc.DeadMalformed, svc.DeadMisrouted, svc.DeadRefused} {
		m.deadLetters.WithLabelValues(events.StreamState, stateConsumer, c)
	}
	for _, c := range workerConsumers {
		m.deadLetters.WithLabelValues(events.StreamEvents, c, svc.DeadMaxDeliveries)
	}
	return m
}

// workerConsumers are the durable consumers of rh's workers on RH_EVENTS
// (skyworker.Durable, sagemakerworker.Durable, sshgateway.Durable; the
// registry does not import its workers). Another consumer's give-ups are
// counted as "other".
var workerConsumers = []string{"skyworker", "sagemakerworker", "sshgateway"}

func consumerLabel(c string) string {
	for _, w := range workerConsumers {
		if c == w {
			return c
		}
	}
	return "other"
}

// setClusters sets the gauges of clusters by phase and kind and the age of
// the oldest cluster in each non-final phase.
func (m *metrics) setClusters(cs []*rh.Cluster, now time.Time) {
	type pk struct {
		p rh.Phase
		k rh.Kind
	}
	counts := map[pk]float64{}
	oldest := map[rh.Phase]float64{}
	for _, c := range cs {
		p := c.Status.Phase
		counts[pk{p, c.Spec.Kind}]++
		if p.Final() {
			continue
		}
		if age := now.Sub(phaseSince(c)).Seconds(); age > oldest[p] {
			oldest[p] = age
		}
	}
	for _, p := range rh.Phases {
		for _, k := range rh.Kinds {
			m.clusters.WithLabelValues(string(p), string(k)).Set(counts[pk{p, k}])
		}
		if !p.Final() {
			m.oldest.WithLabelValues(string(p)).Set(oldest[p])
		}
	}
}

// phaseSince is when c entered its current phase: the start of the run of
// transitions to it at the end of its history (a new message in the same
// phase is a transition too), or its last update when the history does not say.
func phaseSince(c *rh.Cluster) time.Time {
	since := c.UpdatedAt
	for i := len(c.History) - 1; i >= 0; i-- {
		t := c.History[i]
		if t.To != c.Status.Phase {
			break
		}
		since = t.At
		if t.From != t.To {
			break
		}
	}
	return since
}

func (s *Service) newTicker() *time.Ticker { return time.NewTicker(s.cfg.ReconcileEvery) }
