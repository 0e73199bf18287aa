package skyworker

import (
	"errors"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// Launch outcomes (the label values of rh_skyworker_launches_total).
const (
	outcomeUp        = "up"        // launched and up
	outcomeAdopted   = "adopted"   // already up on SkyPilot: nothing launched
	outcomeFailed    = "failed"    // a permanent failure (quota, config, auth)
	outcomeRetried   = "retried"   // a failure that may pass; the event is retried
	outcomeCancelled = "cancelled" // overtaken by a teardown, or the worker stopped
)

func newMetrics(reg prometheus.Registerer) *worker.CloudMetrics {
	return worker.NewCloudMetrics(reg, worker.CloudMetricNames{
		Outcomes: "rh_skyworker_launches_total", OutcomesHelp: "On-demand launches by outcome (up, adopted, failed, retried, cancelled).",
		Duration: "rh_skyworker_launch_duration_seconds", DurationHelp: "Time from submitting (or resuming) a SkyPilot launch to its end, by outcome.",
		DurationBuckets: worker.CloudBuckets,
		OutcomeValues:   []string{outcomeUp, outcomeAdopted, outcomeFailed, outcomeRetried, outcomeCancelled},
		APIErrors:       "rh_skyworker_skypilot_errors_total", APIErrorsHelp: "SkyPilot API errors by operation and type.", ErrorLabel: "type",
		ErrorOps:     []string{"api_status", "autostop", "cancel", "down", "launch", "launch_wait", "status"},
		ErrorClasses: errorTypes,
	}, errorType)
}

// errorTypes are every value errorType returns.
var errorTypes = []string{"resources_unavailable", "invalid_config", "cluster_does_not_exist", "request_failed", "unauthorized",
	"version_mismatch", "unavailable", "request_not_found", "request_cancelled", "http", "network", "other"}

// errorType maps an error to a bounded label value.
func errorType(err error) string {
	var re *skypilot.RequestError
	var he *skypilot.HTTPError
	var ne net.Error
	switch {
	case skypilot.IsResourcesUnavailable(err):
		return "resources_unavailable"
	case skypilot.IsInvalidConfig(err):
		return "invalid_config"
	case skypilot.IsClusterDoesNotExist(err):
		return "cluster_does_not_exist"
	case errors.As(err, &re):
		return "request_failed"
	case errors.Is(err, skypilot.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, skypilot.ErrVersionMismatch):
		return "version_mismatch"
	case errors.Is(err, skypilot.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, skypilot.ErrRequestNotFound):
		return "request_not_found"
	case errors.Is(err, skypilot.ErrRequestCancelled):
		return "request_cancelled"
	case errors.As(err, &he):
		return "http"
	case errors.As(err, &ne):
		return "network"
	}
	return "other"
}
