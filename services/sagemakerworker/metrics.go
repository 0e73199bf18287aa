package sagemakerworker

import (
	"errors"

	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhq/rh/internal/worker"
)

// Job outcomes (the label values of rh_sagemakerworker_jobs_total).
const (
	outcomeCreated   = "created"   // CreateTrainingJob answered with a new job
	outcomeAdopted   = "adopted"   // the job already existed and is ours: nothing created
	outcomeTraining  = "training"  // the job reached Training
	outcomeFailed    = "failed"    // a definite refusal or a failed job
	outcomeRetried   = "retried"   // no definite answer; the event is retried
	outcomeCancelled = "cancelled" // overtaken by a teardown, or the worker stopped
)

func newMetrics(reg prometheus.Registerer) *worker.CloudMetrics {
	return worker.NewCloudMetrics(reg, worker.CloudMetricNames{
		Outcomes: "rh_sagemakerworker_jobs_total", OutcomesHelp: "Training job creates by outcome (created, adopted, training, failed, retried, cancelled).",
		Duration: "rh_sagemakerworker_create_to_training_seconds", DurationHelp: "Time from creating (or adopting) a training job to its reaching Training, or failing first.",
		DurationBuckets: worker.CloudBuckets,
		OutcomeValues:   []string{outcomeCreated, outcomeAdopted, outcomeTraining, outcomeFailed, outcomeRetried, outcomeCancelled},
		APIErrors:       "rh_sagemakerworker_aws_errors_total", APIErrorsHelp: "AWS API errors by operation and error code (unknown codes grouped by fault).", ErrorLabel: "code",
		ErrorOps:     []string{"create", "describe", "get_caller_identity", "stop"},
		ErrorClasses: errorCodes(),
	}, errorCode)
}

// knownCodes are the error codes counted under their own name; others are
// grouped, so a service inventing codes cannot grow the label set.
var knownCodes = map[string]bool{
	"ThrottlingException": true, "ValidationException": true, "ResourceInUse": true,
	"ResourceLimitExceeded": true, "ResourceNotFound": true, "InternalFailure": true,
	"ServiceUnavailable": true, "AccessDeniedException": true, "UnrecognizedClientException": true,
	"ExpiredTokenException": true, "InvalidSignatureException": true, "IncompleteSignatureException": true,
	"MissingAuthenticationTokenException": true, "InvalidClientTokenId": true, "AccessDenied": true,
	"SignatureDoesNotMatch": true, "ExpiredToken": true,
}

// errorCodes are every value errorCode returns.
func errorCodes() []string {
	out := []string{"other_server", "other_client", "http", "network_or_credentials"}
	for c := range knownCodes {
		out = append(out, c)
	}
	return out
}

// errorCode maps an error to a bounded label value: "http" is an HTTP
// error answer that is not an AWS error.
func errorCode(err error) string {
	var ae smithy.APIError // sm's *APIError, or the SDK's (STS)
	var re interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &ae):
		if knownCodes[ae.ErrorCode()] {
			return ae.ErrorCode()
		}
		if ae.ErrorFault() == smithy.FaultServer {
			return "other_server"
		}
		return "other_client"
	case errors.As(err, &re):
		return "http"
	}
	return "network_or_credentials"
}
