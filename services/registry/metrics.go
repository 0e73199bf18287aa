package registry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests   *prometheus.CounterVec
	published  *prometheus.CounterVec
	reports    *prometheus.CounterVec
	casRetries prometheus.Counter
	provision  *prometheus.HistogramVec
	phases     *prometheus.GaugeVec
	watches    prometheus.Counter
	watching   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "rh_registry_requests_total", Help: "Registry API requests that changed state, by operation."}, []string{"op"}),
		published: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_registry_events_published_total", Help: "Lifecycle events published, by type.",
		}, []string{"event_type"}),
		reports: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_registry_reports_total", Help: "Worker state reports consumed, by outcome (applied, stale, out_of_order, duplicate, unknown_cluster, retried, dead_lettered).",
		}, []string{"outcome"}),
		casRetries: f.NewCounter(prometheus.CounterOpts{Name: "rh_registry_cas_retries_total", Help: "Record writes retried after losing a compare-and-set."}),
		provision: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rh_registry_provision_duration_seconds", Help: "Time from an up or create request to the cluster's first Up, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12),
		}, []string{"kind"}),
		watches:  f.NewCounter(prometheus.CounterOpts{Name: "rh_registry_watch_streams_total", Help: "Record watch streams started (a long wait is a chain of bounded streams)."}),
		watching: f.NewGauge(prometheus.GaugeOpts{Name: "rh_registry_watch_streams", Help: "Record watch streams open now."}),
		phases:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "rh_registry_clusters", Help: "Clusters by phase, as of the last reconcile."}, []string{"phase"}),
	}
}

func (s *Service) newTicker() *time.Ticker { return time.NewTicker(s.cfg.ReconcileEvery) }
