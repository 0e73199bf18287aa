// Package sagemakersim is an in-process simulator of the parts of the Amazon
// SageMaker API that rh uses: training jobs (Create, Describe, Stop, List) and
// STS GetCallerIdentity, plus a local stand-in for SSM sessions.
//
// It exists because there is no usable SageMaker fake (moto has no state
// machine and no StopTrainingJob; LocalStack's is paid-only) and no AWS account
// in CI. It speaks the real wire protocols — JSON 1.1 for SageMaker, the query
// protocol for STS — and shapes errors exactly as AWS does, so the real
// aws-sdk-go-v2 clients talk to it unchanged (through BaseEndpoint or
// AWS_ENDPOINT_URL_SAGEMAKER) and deserialise its errors into their typed
// errors. Because the SDK checks the wire format on the client side, the
// simulator cannot drift far from AWS without the worker's tests failing.
//
// Jobs run through a real state machine with timings expressed in "AWS time"
// and scaled by Options.TimeScale (fast by default, for tests). When a job
// reaches Training its instances are provisioned through a NodeProvider, so the
// "instances" can be real local SSH endpoints; the SSM target
// sagemaker-training-job:<job>_algo-<n> resolves to them through
// [ProxyMain].
//
// Conventions shared with the worker (services/sagemakerworker/sm), which
// builds the jobs this simulator runs, are the Env* constants below.
package sagemakersim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Environment variables a job's Environment may carry. They are the contract
// between the worker's keep-alive container and this simulator.
const (
	// EnvSSHPublicKey holds the authorized_keys line (ed25519, since an
	// Environment value is at most 512 characters) installed on every node.
	EnvSSHPublicKey = "RH_SSH_PUBLIC_KEY"
	// EnvKeepAlive marks a "compute-backend" job, whose entry point is the
	// keep-alive loop: it stays in Training until stopped, idle for longer
	// than EnvAutostopMins, or out of MaxRuntime.
	EnvKeepAlive = "RH_KEEPALIVE"
	// EnvAutostopMins is the idle limit in minutes; -1 keeps the job until
	// its MaxRuntimeInSeconds.
	EnvAutostopMins = "RH_AUTOSTOP_MINS"
	// EnvConnectionWaitTime is how many seconds the keep-alive loop waits
	// before it starts counting idleness (so a user can attach first).
	EnvConnectionWaitTime = "RH_CONNECTION_WAIT_TIME"
)

// Endpoint is one reachable SSH endpoint of a simulated instance.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	User string `json:"user"`
}

// NodeProvider makes the instances of a job real. Provision is called when a
// job reaches Training (n is its InstanceCount, authorizedKey the value of
// EnvSSHPublicKey, possibly empty); Release when it leaves Training for good
// (ended, stopped, failed, interrupted) or the server closes.
type NodeProvider interface {
	Provision(ctx context.Context, job string, n int, authorizedKey string) ([]Endpoint, error)
	Release(ctx context.Context, job string) error
}

// Timings are the durations of the simulated phases, in AWS time (they are
// multiplied by Options.TimeScale). Zero fields take the defaults.
type Timings struct {
	Starting      time.Duration // default 60s: "Preparing the instances for training"
	Downloading   time.Duration // default 30s: image and input download
	Training      time.Duration // default 120s: a non-keep-alive job's own work
	Uploading     time.Duration // default 10s
	Stopping      time.Duration // default 30s (AWS allows up to 120s SIGTERM grace)
	KeepAliveTick time.Duration // default 20s: how often the keep-alive loop checks idleness
}

func (t Timings) withDefaults() Timings {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Starting, 60*time.Second)
	def(&t.Downloading, 30*time.Second)
	def(&t.Training, 120*time.Second)
	def(&t.Uploading, 10*time.Second)
	def(&t.Stopping, 30*time.Second)
	def(&t.KeepAliveTick, 20*time.Second)
	return t
}

// Options configure a Server.
type Options struct {
	// Region appears in ARNs. Default us-east-1.
	Region string
	// AccountID is answered by GetCallerIdentity and used in ARNs.
	// Default 123456789012.
	AccountID string
	// TimeScale converts AWS time to real time: a 60 s phase lasts
	// 60 s × TimeScale. Default 0.001 (a minute is 60 ms), fast enough for
	// tests; `rhcli serve --sim` may want ~0.05.
	TimeScale float64
	// Timings of the phases, in AWS time.
	Timings Timings
	// Nodes provisions instances; nil means jobs get no endpoints (SSM
	// targets then answer TargetNotConnected).
	Nodes NodeProvider
	// Roles are the names of the account's IAM roles, which GetRole finds;
	// nil means every role name exists.
	Roles []string
	// IAMDenied makes GetRole answer AccessDenied, as for credentials
	// without iam:GetRole.
	IAMDenied bool
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Server is the simulator. It is an http.Handler; use it with httptest or
// serve it on a real listener. Close it to stop all jobs and release nodes.
type Server struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	jobs    map[string]*job
	order   []string // creation order, for ListTrainingJobs
	faults  faults
	creates []CreateCall
}

// CreateCall records one CreateTrainingJob request that reached the
// simulator (after authentication), so tests can assert how many jobs a
// worker really asked for.
type CreateCall struct {
	Time    time.Time
	Name    string
	Outcome string // "created", "ResourceInUse", "ResourceLimitExceeded", "ThrottlingException", "InternalFailure", "lost-answer", "ValidationException"
}

// New returns a running simulator.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 0.001
	}
	opts.Timings = opts.Timings.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:   opts,
		log:    opts.Logger.With("component", "sagemakersim"),
		ctx:    ctx,
		cancel: cancel,
		jobs:   map[string]*job{},
	}
}

// Close stops every job's state machine and releases their nodes. Jobs keep
// their last status; the server still answers requests afterwards.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// scale converts an AWS-time duration to real time.
func (s *Server) scale(d time.Duration) time.Duration {
	r := time.Duration(float64(d) * s.opts.TimeScale)
	if r < time.Millisecond && d > 0 {
		r = time.Millisecond
	}
	return r
}

// unscale converts a real duration back to AWS time.
func (s *Server) unscale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.opts.TimeScale)
}

// ServeHTTP routes SageMaker JSON 1.1 calls (by X-Amz-Target), STS query
// calls (path /sts or a form-encoded body) and the simulator's own /_sim/
// endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/_sim/"):
		s.serveSim(w, r)
	case r.Header.Get("X-Amz-Target") != "":
		s.serveSageMaker(w, r)
	case strings.HasPrefix(r.URL.Path, "/sts") ||
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		s.serveSTS(w, r)
	default:
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException", "Message", "")
	}
}

// STSHandler returns a handler that answers only STS, for serving it on its
// own host (AWS_ENDPOINT_URL_STS).
func (s *Server) STSHandler() http.Handler { return http.HandlerFunc(s.serveSTS) }

// checkAuth verifies that a SigV4 Authorization header for the given signing
// name is present and well formed. It does not verify the signature (the
// simulator does not know the secret), only what AWS checks before it: that
// the request is signed at all, for the right service, with a date.
func checkAuth(r *http.Request, service string) (code, msg string, ok bool) {
	a := r.Header.Get("Authorization")
	if a == "" {
		return "MissingAuthenticationTokenException", "Missing Authentication Token", false
	}
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(a, algo) {
		return "IncompleteSignatureException", "Authorization header requires 'AWS4-HMAC-SHA256' algorithm.", false
	}
	parts := map[string]string{}
	for _, p := range strings.Split(strings.TrimPrefix(a, algo), ",") {
		k, v, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found {
			return "IncompleteSignatureException", fmt.Sprintf("Authorization header requires each component to be of the form key=value, got %q.", p), false
		}
		parts[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if parts[k] == "" {
			return "IncompleteSignatureException", fmt.Sprintf("Authorization header requires '%s' parameter.", k), false
		}
	}
	scope := strings.Split(parts["Credential"], "/")
	if len(scope) != 5 || scope[0] == "" || len(scope[1]) != 8 || scope[2] == "" || scope[4] != "aws4_request" {
		return "IncompleteSignatureException", "Credential should be scoped to a valid region, service and date.", false
	}
	if scope[3] != service {
		return "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to correct service: '%s'.", service), false
	}
	if len(parts["Signature"]) != 64 {
		return "IncompleteSignatureException", "Signature should be 64 hex characters.", false
	}
	if r.Header.Get("X-Amz-Date") == "" && r.Header.Get("Date") == "" {
		return "IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.", false
	}
	if !strings.Contains(";"+parts["SignedHeaders"]+";", ";host;") {
		return "IncompleteSignatureException", "Signed headers must include 'host'.", false
	}
	return "", "", true
}

// writeJSONError writes an error the way AWS JSON services do: the code in
// X-Amzn-ErrorType (with the coral namespace suffix real responses carry) and
// in the body's __type, the message under msgKey ("Message", or "message" for
// authentication errors).
func writeJSONError(w http.ResponseWriter, status int, code, msgKey, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code+":http://internal.amazon.com/coral/com.amazonaws.sagemaker/")
	w.Header().Set("X-Amzn-RequestId", newRequestID())
	w.WriteHeader(status)
	body := map[string]string{"__type": code}
	if msg != "" {
		body[msgKey] = msg
	}
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", newRequestID())
	_ = json.NewEncoder(w).Encode(v)
}

var reqIDMu sync.Mutex
var reqIDCounter uint64

func newRequestID() string {
	reqIDMu.Lock()
	reqIDCounter++
	n := reqIDCounter
	reqIDMu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
}
