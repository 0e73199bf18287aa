package skypilot

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rhq/rh/internal/lazyre"
)

// Sentinel errors, matchable with errors.Is.
var (
	// ErrUnauthorized: the server answered 401 or 403. The wrapping error
	// names SKYPILOT_SERVICE_ACCOUNT_TOKEN, the usual fix.
	ErrUnauthorized = errors.New("skypilot: unauthorized")
	// ErrVersionMismatch: client and server API versions are incompatible.
	ErrVersionMismatch = errors.New("skypilot: API version mismatch")
	// ErrUnavailable: the server kept answering 503 (or could not be
	// reached) until the context or the retry budget ran out.
	ErrUnavailable = errors.New("skypilot: API server unavailable")
	// ErrRequestNotFound: the server does not know the request id (404).
	ErrRequestNotFound = errors.New("skypilot: request not found")
	// ErrRequestCancelled: the request ended in CANCELLED.
	ErrRequestCancelled = errors.New("skypilot: request cancelled")
)

// Exception type names SkyPilot reports in a failed request's error.type.
const (
	TypeResourcesUnavailable    = "ResourcesUnavailableError"
	TypeClusterDoesNotExist     = "ClusterDoesNotExist"
	TypeInvalidSkyPilotConfig   = "InvalidSkyPilotConfigError"
	TypeClusterNotUp            = "ClusterNotUpError"
	TypeNotSupported            = "NotSupportedError"
	TypeClusterOwnerIdentityErr = "ClusterOwnerIdentityMismatchError"
)

// RequestError is the exception a SkyPilot request FAILED with.
type RequestError struct {
	RequestID string
	Name      string // request name, e.g. "sky.launch"
	Type      string // Python exception class, e.g. "ResourcesUnavailableError"
	Message   string // ANSI colour codes stripped
}

func (e *RequestError) Error() string {
	name := e.Name
	if name == "" {
		name = "request"
	}
	return fmt.Sprintf("skypilot: %s %s failed: %s: %s", name, e.RequestID, e.Type, e.Message)
}

// IsResourcesUnavailable reports whether err is a quota/capacity failure
// (SkyPilot removes the cluster record in that case).
func IsResourcesUnavailable(err error) bool { return isType(err, TypeResourcesUnavailable) }

// IsClusterDoesNotExist reports whether err says the cluster is unknown.
func IsClusterDoesNotExist(err error) bool { return isType(err, TypeClusterDoesNotExist) }

// IsInvalidConfig reports whether the task YAML or config was rejected.
func IsInvalidConfig(err error) bool { return isType(err, TypeInvalidSkyPilotConfig) }

func isType(err error, typ string) bool {
	var re *RequestError
	return errors.As(err, &re) && re.Type == typ
}

// VersionMismatchError carries the server's answer to incompatible version
// headers. It matches ErrVersionMismatch.
type VersionMismatchError struct {
	Endpoint         string
	ClientAPIVersion int
	ServerAPIVersion int    // 0 when unknown
	ServerVersion    string // "" when unknown
	Message          string
}

func (e *VersionMismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "skypilot: the API server at %s", e.Endpoint)
	if e.ServerVersion != "" || e.ServerAPIVersion != 0 {
		fmt.Fprintf(&b, " (SkyPilot %s, API version %d)", e.ServerVersion, e.ServerAPIVersion)
	}
	fmt.Fprintf(&b, " is not compatible with this client (API version %d)", e.ClientAPIVersion)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	b.WriteString("; point SKYPILOT_API_SERVER_ENDPOINT at a compatible server or upgrade the server/rh")
	return b.String()
}

func (e *VersionMismatchError) Is(target error) bool { return target == ErrVersionMismatch }

// HTTPError is an unexpected HTTP status.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("skypilot: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

var ansiRE = lazyre.New(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// StripANSI removes terminal colour/control sequences, which SkyPilot puts
// in every error message.
func StripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }
