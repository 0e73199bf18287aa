// Package proctest runs the processes whole-system tests start — rhcli
// serve, nats-server, Prometheus — and the rhcli binary a user would run, so
// e2e/ and faults/ share one way to start, stop and read them. Every process
// a test starts is stopped by the test's cleanup, and its output is shown
// when the test failed.
package proctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
)

// Child is a process a test started: its output goes to Log, and the test's
// cleanup stops it (if the test did not) and shows the log when the test
// failed, so no process outlives its test.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	Log  *testkit.SyncBuffer

	done chan error
	mu   sync.Mutex
	err  error // the exit, once done has delivered it
	over bool
}

// Stop says how cleanup stops a child still running.
type Stop int

const (
	KillAtCleanup      Stop = iota // SIGKILL: nothing to check
	TermAtCleanup                  // SIGTERM, a kill after 30 s
	TermCleanAtCleanup             // SIGTERM, and the exit must be clean
)

// Start starts cmd with its output captured and registers its stop with
// t.Cleanup.
func Start(t testing.TB, name string, cmd *exec.Cmd, stop Stop) *Child {
	t.Helper()
	c := &Child{Name: name, Cmd: cmd, Log: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.Log, c.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		switch {
		case c.Exited():
		case stop == KillAtCleanup:
			c.Kill()
		default:
			if err, ok := c.Term(); !ok {
				t.Errorf("%s did not stop within 30s of SIGTERM", name)
			} else if stop == TermCleanAtCleanup && err != nil {
				t.Errorf("%s exited with %v after SIGTERM", name, err)
			}
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, c.Log.String())
		}
	})
	return c
}

// Exited reports whether the process has ended (on its own or stopped), and
// collects its exit if it just did.
func (c *Child) Exited() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return true
	}
	select {
	case c.err = <-c.done:
		c.over = true
	default:
	}
	return c.over
}

// Term sends SIGTERM and waits up to 30 s for the exit; ok is false when it
// had to kill the process instead.
func (c *Child) Term() (exit error, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return c.err, true
	}
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case c.err = <-c.done:
		c.over = true
		return c.err, true
	case <-time.After(30 * time.Second):
		c.killLocked()
		return c.err, false
	}
}

// Wait waits up to d for the process to end on its own; ok is false when
// it is still running.
func (c *Child) Wait(d time.Duration) (exit error, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return c.err, true
	}
	select {
	case c.err = <-c.done:
		c.over = true
		return c.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Kill ends the process at once (SIGKILL, as kill -9) and waits for it.
func (c *Child) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killLocked()
}

func (c *Child) killLocked() {
	if c.over {
		return
	}
	_ = c.Cmd.Process.Kill()
	c.err, c.over = <-c.done, true
}

// GoBuild builds the main package pkg into dir/name (for a TestMain, before
// any test runs) and returns the binary's path.
func GoBuild(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// BuildRhcli builds rhcli into dir with a version of its own (e2e-<random>),
// so that the agent the gateway places from it on the test nodes
// (~/.rh/bin/rhcli-<version>) belongs to this test process alone and
// RemoveAgents can take it away afterwards.
func BuildRhcli(dir string) (path, version string, err error) {
	var b [5]byte
	_, _ = rand.Read(b[:])
	version = "e2e-" + hex.EncodeToString(b[:])
	path = filepath.Join(dir, "rhcli")
	cmd := exec.Command("go", "build", "-ldflags", "-X github.com/rhq/rh/internal/cli.Version="+version, "-o", path, "github.com/rhq/rh/cmd/rhcli")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build rhcli: %w\n%s", err, out)
	}
	return path, version, nil
}

// RemoveAgents removes what agents of version the tests' gateways placed in
// the test nodes' user's home (the nodes run on this machine), an upload
// cut short included.
func RemoveAgents(version string) {
	u, err := user.Lookup(sshnode.DefaultUser())
	if err != nil {
		return
	}
	dir := filepath.Join(u.HomeDir, agent.InstallDir)
	for _, pattern := range []string{"rhcli-" + version + "*", ".rhcli-" + version + "*"} {
		left, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, p := range left {
			_ = os.Remove(p)
		}
	}
}

// Rhcli is a built rhcli binary and the credentials to use with each NATS
// URL a test started, so commands authenticate as a user would.
type Rhcli struct {
	Path  string
	creds sync.Map
}

// SetCreds makes Run use creds (RH_NATS_CREDS) for url.
func (r *Rhcli) SetCreds(url, creds string) { r.creds.Store(url, creds) }

// Creds returns the credentials file SetCreds recorded for url.
func (r *Rhcli) Creds(url string) string {
	c, _ := r.creds.Load(url)
	s, _ := c.(string)
	return s
}

// Run runs rhcli against url (RH_NATS_URL) and returns its exit code,
// stdout and stderr. It gives up after 60 s.
func (r *Rhcli) Run(t testing.TB, url string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return r.RunContext(ctx, t, url, args...)
}

// RunContext is Run with the caller's deadline.
func (r *Rhcli) RunContext(ctx context.Context, t testing.TB, url string, args ...string) (int, string, string) {
	t.Helper()
	cmd := r.Command(ctx, url, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// Command is the rhcli command Run runs, for callers that run it
// themselves (from several goroutines, say).
func (r *Rhcli) Command(ctx context.Context, url string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.Path, args...)
	cmd.Env = append(os.Environ(), "RH_NATS_URL="+url)
	if creds := r.Creds(url); creds != "" {
		cmd.Env = append(cmd.Env, "RH_NATS_CREDS="+creds)
	}
	return cmd
}

// NATSConfig runs `rhcli nats-config --dir dir --listen listen --store-dir
// storeDir`: rh's accounts, a server configuration and the credentials.
func (r *Rhcli) NATSConfig(t testing.TB, dir, listen, storeDir string) {
	t.Helper()
	out, err := exec.Command(r.Path, "nats-config", "--dir", dir, "--listen", listen, "--store-dir", storeDir).CombinedOutput()
	if err != nil {
		t.Fatalf("nats-config: %v\n%s", err, out)
	}
}

// ServiceArgs are the flags that run service name with its own user from the
// files `rhcli nats-config --dir dir` wrote.
func ServiceArgs(dir, name string) []string {
	args := []string{"--creds", filepath.Join(dir, "service-"+name+".creds")}
	if name == "registry" {
		args = append(args, "--users", filepath.Join(dir, "users.json"))
	}
	return args
}

// Service is one `rhcli serve --nats … --services NAME` process.
type Service struct {
	*Child
	// HTTP is its /metrics, /healthz and /readyz address.
	HTTP string
}

// ServiceOptions adjust a service process.
type ServiceOptions struct {
	// Env is added to the process environment (HOME is a fresh directory).
	Env []string
	// Args are extra serve flags.
	Args []string
	// ReconcileEvery is serve's --reconcile-every; zero means 500 ms, so
	// drift shows quickly. Fault tests keep serve's default, so that a
	// refresh does not hide how long a takeover takes.
	ReconcileEvery time.Duration
}

// httpListening is serve's log line naming the address its HTTP server
// was given.
var httpListening = regexp.MustCompile(`msg=http addr=(\S+)`)

// StartService runs one service as its own `rhcli serve` process joined to
// natsURL and waits until its /readyz answers 200. Its HTTP port is the
// one the kernel gives it (port 0), read from its log: a port chosen here
// and passed on could be taken by a test running beside this one before
// the service binds it.
func (r *Rhcli) StartService(t testing.TB, natsURL, name string, o ServiceOptions) *Service {
	t.Helper()
	s := &Service{}
	if o.ReconcileEvery == 0 {
		o.ReconcileEvery = 500 * time.Millisecond
	}
	args := append([]string{"serve", "--nats", natsURL, "--services", name, "--http-addr", "127.0.0.1:0", "--reconcile-every", o.ReconcileEvery.String()}, o.Args...)
	cmd := exec.Command(r.Path, args...)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), o.Env...)
	s.Child = Start(t, name, cmd, KillAtCleanup)
	ready := func() bool {
		if s.HTTP == "" {
			m := httpListening.FindStringSubmatch(s.Log.String())
			if m == nil {
				return false
			}
			s.HTTP = m[1]
		}
		return s.Ready()
	}
	// A service that exits (bad flags, bad environment) fails at once.
	if !testkit.Poll(60*time.Second, func() bool { return s.Exited() || ready() }) || s.Exited() {
		t.Fatalf("%s not ready (exited: %v):\n%s", name, s.Exited(), s.Log.String())
	}
	return s
}

// Ready reports whether the service's /readyz answers 200.
func (s *Service) Ready() bool {
	resp, err := http.Get("http://" + s.HTTP + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop sends SIGTERM and fails the test unless the service exits cleanly.
func (s *Service) Stop(t testing.TB) {
	t.Helper()
	err, ok := s.Term()
	if !ok {
		t.Fatalf("%s did not stop within 30s of SIGTERM", s.Name)
	}
	if err != nil {
		t.Fatalf("%s exited with %v after SIGTERM:\n%s", s.Name, err, s.Log.String())
	}
}
