package sm

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// Error codes that are not a definite answer about the request: throttling,
// transient service trouble, and credentials that expired mid-flight (they
// will be refreshed; the request may be retried).
var retryableCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "ThrottledException": true,
	"RequestThrottledException": true, "TooManyRequestsException": true,
	"RequestLimitExceeded": true, "LimitExceededException": true, "SlowDown": true,
	"RequestThrottled": true, "PriorRequestNotComplete": true,
	"RequestTimeout": true, "RequestTimeoutException": true,
	"InternalFailure": true, "InternalServerError": true, "InternalError": true,
	"ServiceUnavailable": true, "ServiceUnavailableException": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "RequestExpired": true,
	"IDPCommunicationError": true,
}

// IsRetryable reports whether err is NOT a definite answer, so the caller
// must neither conclude anything from it (a job is not "down" because
// describing it was throttled) nor act on it beyond trying again later:
// throttling, 5xx, network failures, and credential problems (expired
// tokens, a credentials provider that could not answer). Because job names
// are deterministic, retrying a create after any of these can never start a
// second job. A cancelled or expired ctx is not retryable: the caller is
// giving up.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// Both this package's *APIError and the SDK's (STS) errors carry a
	// status and satisfy smithy.APIError.
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if retryableCodes[ae.ErrorCode()] {
			return true
		}
		return ae.ErrorFault() == smithy.FaultServer
	}
	// No API error at all: the request never got an answer (network,
	// credentials retrieval, a response that did not parse). Nothing
	// definite was said.
	return true
}

// IsResourceLimit reports an account quota refusal (ResourceLimitExceeded):
// definite, not worth retrying until the user raises the quota or picks
// another instance type.
func IsResourceLimit(err error) bool { return hasCode(err, "ResourceLimitExceeded") }

// IsInUse reports ResourceInUse: on create, a job of that name already
// exists (possibly ours, created by an attempt whose answer was lost).
func IsInUse(err error) bool { return hasCode(err, "ResourceInUse") }

// IsNotFound reports a missing job. SageMaker declares ResourceNotFound but
// really answers a generic ValidationException "Requested resource not
// found."; both count.
func IsNotFound(err error) bool {
	if hasCode(err, "ResourceNotFound") {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" {
		m := strings.ToLower(ae.ErrorMessage())
		return strings.Contains(m, "not found") || strings.Contains(m, "does not exist")
	}
	return false
}

// isAlreadyStopped reports StopTrainingJob's refusal of a job that has
// already ended.
func isAlreadyStopped(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" &&
		strings.Contains(ae.ErrorMessage(), "in status")
}

func hasCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
