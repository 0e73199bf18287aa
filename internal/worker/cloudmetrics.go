package worker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// CloudMetricNames name a cloud worker's three metrics: its main cloud
// operation (a launch, a training job) counted and timed by outcome, and its
// cloud API's errors by operation and error class.
type CloudMetricNames struct {
	Outcomes, OutcomesHelp string
	Duration, DurationHelp string
	DurationBuckets        []float64
	// OutcomeValues are every outcome, created at zero at start.
	OutcomeValues            []string
	APIErrors, APIErrorsHelp string
	// ErrorLabel names the error class label ("type", "code").
	ErrorLabel string
	// ErrorOps and ErrorClasses are every API operation and every class the
	// classifier returns; each pair is created at zero at start (with the
	// class "cancelled").
	ErrorOps, ErrorClasses []string
}

// CloudMetrics are a cloud worker's metrics.
type CloudMetrics struct {
	outcomes  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	apiErrors *prometheus.CounterVec
	classify  func(error) string
}

// NewCloudMetrics registers the metrics on reg. classify maps an API error
// to a bounded label value; cancelled calls are "cancelled" before it is asked.
func NewCloudMetrics(reg prometheus.Registerer, n CloudMetricNames, classify func(error) string) *CloudMetrics {
	f := promauto.With(reg)
	if n.DurationBuckets == nil {
		n.DurationBuckets = CloudBuckets
	}
	m := &CloudMetrics{
		outcomes:  f.NewCounterVec(prometheus.CounterOpts{Name: n.Outcomes, Help: n.OutcomesHelp}, []string{"outcome"}),
		duration:  f.NewHistogramVec(prometheus.HistogramOpts{Name: n.Duration, Help: n.DurationHelp, Buckets: n.DurationBuckets}, []string{"outcome"}),
		apiErrors: f.NewCounterVec(prometheus.CounterOpts{Name: n.APIErrors, Help: n.APIErrorsHelp}, []string{"op", n.ErrorLabel}),
		classify:  classify,
	}
	for _, op := range n.ErrorOps {
		for _, c := range append([]string{"cancelled"}, n.ErrorClasses...) {
			m.apiErrors.WithLabelValues(op, c)
		}
	}
	for _, o := range n.OutcomeValues {
		m.outcomes.WithLabelValues(o)
		m.duration.WithLabelValues(o)
	}
	return m
}

// CloudBuckets fit a cloud operation that takes from a second (adopting
// what exists, the simulators) to an hour and more (a launch, a training
// job's start).
var CloudBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200}

// Outcome counts one operation that ended with outcome.
func (m *CloudMetrics) Outcome(outcome string) { m.outcomes.WithLabelValues(outcome).Inc() }

// Took records how long an operation that ended with outcome took since start.
func (m *CloudMetrics) Took(outcome string, start time.Time) {
	m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}

// APIError counts err, when there is one, against the API operation op.
func (m *CloudMetrics) APIError(op string, err error) {
	if err == nil {
		return
	}
	class := "cancelled"
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		class = m.classify(err)
	}
	m.apiErrors.WithLabelValues(op, class).Inc()
}
