// Package skysim is an in-process SkyPilot API server: the same HTTP
// protocol and quirks as the real one (see reference/skypilot.md), with
// "machines" that are real local SSH endpoints supplied by a NodeProvider,
// and injectable failures. It serves the skyworker's tests and `rhcli serve
// --sim`. A simulator that is kinder than SkyPilot proves nothing, so it
// keeps the awkward parts: asynchronous requests, double-encoded results,
// pickled handles, a status cache that lags autostop, INIT leftovers after
// a cancelled launch, and records that vanish after quota failures.
package skysim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Endpoint is one provisioned node, reachable over SSH.
type Endpoint struct {
	InternalIP    string
	ExternalIP    string
	SSHPort       int
	SSHUser       string
	PrivateKeyPEM []byte
}

// NodeProvider supplies the machines of simulated clusters.
type NodeProvider interface {
	// Provision returns n endpoints for the cluster, head first.
	Provision(ctx context.Context, cluster string, n int) ([]Endpoint, error)
	// Release frees all of the cluster's endpoints. It must be idempotent.
	Release(ctx context.Context, cluster string) error
}

// Options configure a Server. Zero values mean defaults.
type Options struct {
	Nodes NodeProvider // required for launches to succeed

	APIVersion    int    // default 90
	Version       string // default "0.14.0"
	MinAPIVersion int    // default 24: older clients get 400 version_mismatch

	// Token, when set, is required as "Authorization: Bearer <Token>"
	// (401 without it, 403 with another one). /api/health stays open.
	Token string

	// LaunchLatency is how long provisioning takes before the provider is
	// called (default 0).
	LaunchLatency time.Duration
	// QueueDelay is how long a request stays PENDING (default 0).
	QueueDelay time.Duration
	// AutostopMinute is the real duration of one autostop "idle minute"
	// (default one minute), so tests can run autostop in milliseconds.
	AutostopMinute time.Duration

	EnabledClouds []string // default ["AWS"]
	// DisabledReasons are what /check prints as the reason of each cloud
	// that is not enabled (by name, e.g. "GCP"); clouds not listed get the
	// reason SkyPilot gives when a cloud's credentials are not set up.
	DisabledReasons map[string]string
	Logger          *slog.Logger
}

// Server is a simulated SkyPilot API server.
type Server struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux

	mu       sync.Mutex
	requests map[string]*request
	order    []string // request ids in creation order
	clusters map[string]*cluster
	cache    map[string]record // what /status reports without refresh
	locks    map[string]*clusterLock

	provisions   int
	quotaErrors  int
	storm503N    int
	storm503End  time.Time
	lose         int
	loseVanish   time.Duration
	baseCtx      context.Context
	cancelAll    context.CancelFunc
	wg           sync.WaitGroup
	launchDelay  time.Duration
	requestCount int
	exchanges    []Exchange
}

// New returns a server; serve it with httptest.NewServer(s) or
// ListenAndServe. Close stops its background work.
func New(opts Options) *Server {
	if opts.APIVersion == 0 {
		opts.APIVersion = 90
	}
	if opts.Version == "" {
		opts.Version = "0.14.0"
	}
	if opts.MinAPIVersion == 0 {
		opts.MinAPIVersion = 24
	}
	if opts.AutostopMinute <= 0 {
		opts.AutostopMinute = time.Minute
	}
	if len(opts.EnabledClouds) == 0 {
		opts.EnabledClouds = []string{"AWS"}
	}
	s := &Server{
		opts:        opts,
		log:         opts.Logger,
		requests:    make(map[string]*request),
		clusters:    make(map[string]*cluster),
		cache:       make(map[string]record),
		locks:       make(map[string]*clusterLock),
		launchDelay: opts.LaunchLatency,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.baseCtx, s.cancelAll = context.WithCancel(context.Background())
	s.routes()
	return s
}

// Close cancels running requests and autostop timers and waits for them.
// Nodes of live clusters are not released: call Release on the provider.
func (s *Server) Close() {
	s.cancelAll()
	s.mu.Lock()
	for _, c := range s.clusters {
		if c.timer != nil {
			c.timer.Stop()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// ListenAndServe serves on addr until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("skysim: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.cancelAll() // unblocks /api/get handlers
		_ = srv.Shutdown(shutCtx)
		s.Close()
		return nil
	}
}

// ---- failure injection and inspection ----

// FailNextLaunches makes the next n launches that need new machines fail
// with ResourcesUnavailableError (quota/capacity); their records vanish.
func (s *Server) FailNextLaunches(n int) {
	s.mu.Lock()
	s.quotaErrors = n
	s.mu.Unlock()
}

// Unavailable503 answers the next n HTTP requests with 503.
func (s *Server) Unavailable503(n int) {
	s.mu.Lock()
	s.storm503N = n
	s.mu.Unlock()
}

// Unavailable503For answers every HTTP request with 503 for d.
func (s *Server) Unavailable503For(d time.Duration) {
	s.mu.Lock()
	s.storm503End = time.Now().Add(d)
	s.mu.Unlock()
}

// LoseNextRequests makes the next n submitted requests never run: they stay
// PENDING, and when vanishAfter > 0 they disappear after that long (404).
func (s *Server) LoseNextRequests(n int, vanishAfter time.Duration) {
	s.mu.Lock()
	s.lose, s.loseVanish = n, vanishAfter
	s.mu.Unlock()
}

// SetLaunchLatency changes the provisioning delay of later launches.
func (s *Server) SetLaunchLatency(d time.Duration) {
	s.mu.Lock()
	s.launchDelay = d
	s.mu.Unlock()
}

// Provisions counts launches that provisioned machines (reuses excluded):
// the number to assert "exactly one launch" on.
func (s *Server) Provisions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.provisions
}

// LoggedRequest is one entry of the request log.
type LoggedRequest struct {
	ID      string
	Name    string // e.g. "sky.launch"
	Cluster string
	Status  string
}

// Requests returns the request log in submission order.
func (s *Server) Requests() []LoggedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LoggedRequest
	for _, id := range s.order {
		if r, ok := s.requests[id]; ok {
			out = append(out, LoggedRequest{ID: r.id, Name: r.name, Cluster: r.cluster, Status: r.status})
		}
	}
	return out
}

// CountRequests counts logged requests with the given name ("sky.launch").
func (s *Server) CountRequests(name string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Name == name {
			n++
		}
	}
	return n
}

// ClusterState reports a cluster's true state ("" when it does not exist),
// bypassing the status cache.
func (s *Server) ClusterState(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clusters[name]; ok {
		return c.status
	}
	return ""
}

// ---- clusters ----

type cluster struct {
	name, hash, userHash, userName string
	status                         string // INIT, UP, STOPPED
	nodes                          []Endpoint
	cloud, region, zone            string
	instanceType, accelerators     string
	cpus, memory, imageID          string
	diskSize                       int
	useSpot                        bool
	ports                          []any
	launchedAt                     time.Time
	lastUse                        string
	autostop                       int
	toDown                         bool
	jobs                           int
	timer                          *time.Timer
}

// clusterLock serialises requests on one cluster; waiters are WAITING.
type clusterLock struct {
	ch chan struct{}
}

func (s *Server) lockFor(name string) *clusterLock {
	l, ok := s.locks[name]
	if !ok {
		l = &clusterLock{ch: make(chan struct{}, 1)}
		s.locks[name] = l
	}
	return l
}

// armAutostop (re)starts the idle timer; s.mu is held.
func (s *Server) armAutostop(c *cluster) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.autostop < 0 || c.status != "UP" {
		return
	}
	d := time.Duration(c.autostop) * s.opts.AutostopMinute
	name, gen := c.name, c
	c.timer = time.AfterFunc(d, func() { s.autostopFire(name, gen) })
}

// autostopFire stops or tears down an idle cluster. Like the real skylet it
// acts behind the API server's back: the status cache keeps the old record
// until a refresh.
func (s *Server) autostopFire(name string, c *cluster) {
	s.mu.Lock()
	cur, ok := s.clusters[name]
	if !ok || cur != c || c.status != "UP" {
		s.mu.Unlock()
		return
	}
	down := c.toDown
	if down {
		delete(s.clusters, name)
	} else {
		c.status = "STOPPED"
		c.nodes = nil
	}
	c.timer = nil
	s.mu.Unlock()
	s.log.Info("skysim: autostop fired", "cluster", name, "down", down)
	if s.opts.Nodes != nil {
		if err := s.opts.Nodes.Release(context.Background(), name); err != nil {
			s.log.Warn("skysim: release after autostop", "cluster", name, "err", err)
		}
	}
}

// syncCache copies the true state into the status cache; s.mu is held.
func (s *Server) syncCache(names []string) {
	if len(names) == 0 {
		for n := range s.cache {
			names = append(names, n)
		}
		for n := range s.clusters {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if c, ok := s.clusters[n]; ok {
			s.cache[n] = s.recordOf(c)
		} else {
			delete(s.cache, n)
		}
	}
}

func clusterHash(name, user string) string {
	sum := sha256.Sum256([]byte(name + "/" + user + "/" + uuid.NewString()))
	return hex.EncodeToString(sum[:])
}

// ---- request plumbing ----

type request struct {
	id, name, cluster string
	userID, userName  string
	createdAt         float64
	finishedAt        float64
	status            string
	statusMsg         string
	returnValue       any    // JSON-encodable
	errType, errMsg   string // set when FAILED
	done              chan struct{}
	cancel            context.CancelFunc
	lost              bool
	log               []byte        // what the request printed, served by /api/stream
	logged            chan struct{} // closed and replaced on every write
}

func nowUnix() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// submit registers a request and runs fn asynchronously.
func (s *Server) submit(name, clusterName string, env map[string]string, fn func(ctx context.Context, r *request) (any, error)) *request {
	ctx, cancel := context.WithCancel(s.baseCtx)
	r := &request{id: uuid.NewString(), name: name, cluster: clusterName, userID: env["SKYPILOT_USER_ID"],
		userName: env["SKYPILOT_USER"], createdAt: nowUnix(), status: "PENDING", done: make(chan struct{}), cancel: cancel,
		logged: make(chan struct{})}
	s.mu.Lock()
	s.requests[r.id] = r
	s.order = append(s.order, r.id)
	lose := s.lose > 0
	var vanish time.Duration
	if lose {
		s.lose--
		vanish = s.loseVanish
		r.lost = true
	}
	s.mu.Unlock()
	if lose {
		if vanish > 0 {
			time.AfterFunc(vanish, func() {
				s.mu.Lock()
				delete(s.requests, r.id)
				s.mu.Unlock()
			})
		}
		return r
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		s.run(ctx, r, fn)
	}()
	return r
}

func (s *Server) run(ctx context.Context, r *request, fn func(context.Context, *request) (any, error)) {
	if d := s.opts.QueueDelay; d > 0 {
		select {
		case <-ctx.Done():
			s.finish(r, nil, ctx.Err())
			return
		case <-time.After(d):
		}
	}
	var lock *clusterLock
	if r.cluster != "" && r.name != "sky.status" {
		s.mu.Lock()
		lock = s.lockFor(r.cluster)
		s.mu.Unlock()
		select {
		case lock.ch <- struct{}{}:
		default:
			s.setStatus(r, "WAITING", "waiting for cluster lock")
			s.log.Debug("skysim: request waits for its cluster's lock", "request", r.id, "name", r.name, "cluster", r.cluster)
			select {
			case lock.ch <- struct{}{}:
			case <-ctx.Done():
				s.finish(r, nil, ctx.Err())
				return
			}
		}
		defer func() { <-lock.ch }()
	}
	if !s.setStatus(r, "RUNNING", "") {
		return // cancelled meanwhile
	}
	s.log.Debug("skysim: request running", "request", r.id, "name", r.name, "cluster", r.cluster)
	v, err := fn(ctx, r)
	s.finish(r, v, err)
}

func (s *Server) setStatus(r *request, st, msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if isTerminal(r.status) {
		return false
	}
	r.status, r.statusMsg = st, msg
	return true
}

func isTerminal(st string) bool { return st == "SUCCEEDED" || st == "FAILED" || st == "CANCELLED" }

// skyError is an exception a request fails with.
type skyError struct{ typ, msg string }

func (e *skyError) Error() string { return e.typ + ": " + e.msg }

func (s *Server) finish(r *request, v any, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if isTerminal(r.status) {
		return
	}
	r.finishedAt = nowUnix()
	var se *skyError
	var ce *configError
	switch {
	case err == nil:
		r.status, r.returnValue = "SUCCEEDED", v
	case errors.Is(err, context.Canceled):
		r.status = "CANCELLED"
	case errors.As(err, &se):
		r.status, r.errType, r.errMsg = "FAILED", se.typ, se.msg
	case errors.As(err, &ce):
		r.status, r.errType, r.errMsg = "FAILED", "InvalidSkyPilotConfigError", ce.msg
	default:
		r.status, r.errType, r.errMsg = "FAILED", "RuntimeError", err.Error()
	}
	s.log.Debug("skysim: request finished", "request", r.id, "name", r.name, "cluster", r.cluster, "status", r.status, "err", r.errMsg)
	close(r.done)
}

// resolve finds a request by id or unique prefix: (nil, 404) unknown,
// (nil, 400) ambiguous.
func (s *Server) resolve(id string) (*request, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.requests[id]; ok {
		return r, 0
	}
	var found []*request
	for k, r := range s.requests {
		if id != "" && strings.HasPrefix(k, id) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, http.StatusNotFound
	case 1:
		return found[0], 0
	}
	return nil, http.StatusBadRequest
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
