package sshgateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/sshx"
)

// Node agents. A new SSH session costs tens of milliseconds on the node; a
// request to a process already running there costs well under one. So on
// first use of a node the gateway places its own binary there (agent.Install:
// once per version, checksum-verified, in ~/.rh/bin), starts `rhcli agent` in
// one long-lived session over the pooled connection (agent.Start), and sends
// runs, file operations, facts and status through it. One agent per node
// (keyed like the pool: user, address, route, credentials, host-key policy), shared by every cluster that
// names the node.
//
// Where the agent cannot run (not Linux, no binary for the architecture, no
// writable home, a noexec home) the node is marked unavailable with the
// reason, shown in its status, and everything uses plain SSH sessions as
// before; the reason is re-checked after AgentRetry. An agent that dies is
// restarted on the next use, and in the background (with backoff) while its
// connection is still up, so a kill -9 on the node costs nothing visible.
// A running agent holds its connection (sshx.Client.Hold), so the pool's
// idle close leaves it alone; an agent that dies with its connection (a
// teardown, a node reboot, a dropped network) starts again on the next use.

// errAgentDisabled is the fallback reason when Config.DisableAgent is set.
var errAgentDisabled = errors.New("the node agent is disabled in the gateway's configuration")

// agentUnavailableError is a node where the agent cannot run.
type agentUnavailableError struct{ reason string }

func (e *agentUnavailableError) Error() string { return e.reason }

// nodeAgent is the gateway's view of one node's agent.
type nodeAgent struct {
	key string

	mu       sync.Mutex
	cur      *agent.Client
	conn     *sshx.Client // the connection cur runs on
	started  time.Time
	starting chan struct{} // closed when the start under way finishes
	// unavailable says why the agent cannot run here (fallback to sessions).
	unavailable string
	checkedAt   time.Time
	// startErr is the last start failure of another kind (retried after retryAt).
	startErr error
	retryAt  time.Time
	failures int
	restarts int
	// intentional is an agent closed on purpose: no background restart.
	intentional map[*agent.Client]bool
}

// agentKey keys agents like the pool keys connections (sshx.Target.Key):
// an agent is reached only over a connection with the same identity.
func agentKey(t sshx.Target) string { return t.Key() }

func (s *Service) nodeAgent(t sshx.Target) *nodeAgent {
	k := agentKey(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	na := s.agents[k]
	if na == nil {
		na = &nodeAgent{key: k, intentional: map[*agent.Client]bool{}}
		s.agents[k] = na
	}
	return na
}

// runningAgent returns the node's agent if one is running now, without
// starting one.
func (s *Service) runningAgent(t sshx.Target) *agent.Client {
	if s.cfg.DisableAgent {
		return nil
	}
	na := s.nodeAgent(t)
	na.mu.Lock()
	defer na.mu.Unlock()
	if na.cur != nil {
		select {
		case <-na.cur.Done():
		default:
			return na.cur
		}
	}
	return nil
}

// agentFor returns the node's running agent, placing and starting it on
// first use. A nil client with an error means: use plain sessions; the error
// says why (an *agentUnavailableError for nodes where it cannot run).
func (s *Service) agentFor(ctx context.Context, cluster string, t nodeTarget) (*agent.Client, error) {
	if s.cfg.DisableAgent {
		return nil, errAgentDisabled
	}
	na := s.nodeAgent(t.Target)
	for {
		na.mu.Lock()
		if c := na.cur; c != nil {
			select {
			case <-c.Done():
				na.cur = nil
			default:
				na.mu.Unlock()
				return c, nil
			}
		}
		if na.unavailable != "" && time.Since(na.checkedAt) < s.cfg.AgentRetry {
			r := na.unavailable
			na.mu.Unlock()
			return nil, &agentUnavailableError{reason: r}
		}
		if na.startErr != nil && time.Now().Before(na.retryAt) {
			err := na.startErr
			na.mu.Unlock()
			return nil, err
		}
		if ch := na.starting; ch != nil {
			na.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		ch := make(chan struct{})
		na.starting = ch
		na.mu.Unlock()
		// The start outlives this caller (others may wait on it); the
		// AgentStartTimeout bounds it.
		s.wg.Go(func() {
			defer close(ch)
			s.startAgent(cluster, t, na)
		})
	}
}

// startAgent places and starts the agent and records the outcome in na.
func (s *Service) startAgent(cluster string, t nodeTarget, na *nodeAgent) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AgentStartTimeout)
	defer cancel()
	log := s.log.With("cluster", cluster, "node", t.Label)
	c, conn, err := s.placeAndStart(ctx, log, cluster, t)
	na.mu.Lock()
	defer func() { na.starting = nil; na.mu.Unlock() }()
	var un *agentUnavailableError
	switch {
	case err == nil:
		na.cur, na.conn, na.started = c, conn, time.Now()
		na.unavailable, na.startErr, na.failures = "", nil, 0
		s.m.agents.Inc()
		s.wg.Go(func() { s.watchAgent(cluster, t, na, c, conn) })
	case errors.As(err, &un):
		if na.unavailable == "" {
			log.Warn("node agent unavailable; using plain SSH sessions", "reason", un.reason)
		}
		na.unavailable, na.checkedAt, na.startErr = un.reason, time.Now(), nil
		s.m.fallbacks.WithLabelValues("cannot_run").Inc()
	default:
		na.failures++
		backoff := min(time.Duration(1<<min(na.failures-1, 8))*s.cfg.AgentRestartBackoff, 5*time.Minute)
		na.startErr, na.retryAt = fmt.Errorf("the node agent did not start: %w", err), time.Now().Add(backoff)
		log.Warn("node agent did not start; using plain SSH sessions meanwhile", "err", err, "retry_in", backoff)
		s.m.fallbacks.WithLabelValues("start_failed").Inc()
	}
}

// placeAndStart installs the binary for the node's architecture (uploading
// only when missing or different) and starts it over the pooled connection.
func (s *Service) placeAndStart(ctx context.Context, log *slog.Logger, cluster string, t nodeTarget) (*agent.Client, *sshx.Client, error) {
	conn, err := s.client(ctx, cluster, t.Target)
	if err != nil {
		return nil, nil, err
	}
	// Install's sessions and then the agent's are opened on the connection
	// directly: hold it, so the pool's idle close does not cut them. The
	// agent keeps the hold for as long as it runs: its connection must not
	// be closed as idle while its cluster is Up (a teardown closes the
	// cluster's connections, and the agent with them).
	release := conn.Hold()
	started := false
	defer func() {
		if !started {
			release()
		}
	}()
	arch := ""
	if t.Node.Facts != nil {
		arch = t.Node.Facts.Arch
	}
	if arch == "" {
		var out bytes.Buffer
		if _, err := sshx.Run(ctx, conn, sshx.RunRequest{Command: "uname -m", Stdout: &out}); err != nil {
			return nil, nil, fmt.Errorf("find the architecture: %w", err)
		}
		arch = strings.TrimSpace(out.String())
	}
	bin, err := s.agentBinary(arch)
	if err != nil {
		s.m.placements.WithLabelValues("cannot_run").Inc()
		return nil, nil, err
	}
	path, uploaded, err := agent.Install(ctx, conn.SSH(), bin, s.cfg.AgentVersion)
	if errors.Is(err, agent.ErrCannotRun) {
		s.m.placements.WithLabelValues("cannot_run").Inc()
		var ce *agent.CannotRunError
		reason := err.Error()
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
		return nil, nil, &agentUnavailableError{reason: reason}
	}
	if err != nil {
		s.m.placements.WithLabelValues("error").Inc()
		return nil, nil, err
	}
	if uploaded {
		s.m.placements.WithLabelValues("uploaded").Inc()
		log.Info("node agent placed", "version", s.cfg.AgentVersion, "path", path)
	} else {
		s.m.placements.WithLabelValues("reused").Inc()
	}
	c, err := agent.Start(ctx, conn.SSH(), path)
	if c != nil {
		c.OnRoundTrip = func(op string, d time.Duration) {
			if slices.Contains(agent.RoundTripOps, op) { // bounded labels only
				s.m.agentTrips.WithLabelValues(op).Observe(d.Seconds())
			}
		}
	}
	if errors.Is(err, agent.ErrIncompatible) {
		// The binary just verified is this gateway's own build: a protocol it
		// cannot speak means it is not the binary it claims to be.
		return nil, nil, &agentUnavailableError{reason: err.Error()}
	}
	if err != nil {
		return nil, nil, err
	}
	started = true
	go func() { <-c.Done(); release() }()
	if v := c.Hello().AgentVersion; v != s.cfg.AgentVersion {
		// Install placed rhcli-<AgentVersion>; a binary reporting another
		// version was built with another version string. It works; say so.
		log.Warn("node agent reports another version than the one placed", "placed", s.cfg.AgentVersion, "reports", v)
	}
	log.Info("node agent started", "version", c.Hello().AgentVersion, "pid", c.Hello().PID, "uploaded", uploaded)
	return c, conn, nil
}

// agentBinary picks the binary to place for a node's `uname -m`.
func (s *Service) agentBinary(unameArch string) (string, error) {
	goarch := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[unameArch]
	if goarch == "" {
		return "", &agentUnavailableError{reason: fmt.Sprintf("no agent binary for the node's architecture %q", unameArch)}
	}
	if p, ok := s.cfg.AgentBinaries[goarch]; ok {
		if _, err := os.Stat(p); err != nil {
			return "", &agentUnavailableError{reason: fmt.Sprintf("agent binary for %s: %v", goarch, err)}
		}
		return p, nil
	}
	if testing.Testing() {
		// A test binary is no rhcli: started as `<it> agent` it would run the
		// test suite on the node. Tests name their agent binary explicitly.
		return "", &agentUnavailableError{reason: "the gateway runs in a test binary and Config.AgentBinaries names no agent binary"}
	}
	exe, err := os.Executable()
	if err != nil {
		return "", &agentUnavailableError{reason: fmt.Sprintf("cannot find the gateway's own binary: %v", err)}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == goarch {
		return exe, nil
	}
	p := filepath.Join(filepath.Dir(exe), "rhcli-linux-"+goarch)
	if _, err := os.Stat(p); err != nil {
		return "", &agentUnavailableError{reason: fmt.Sprintf("no agent binary for linux/%s (looked for %s)", goarch, p)}
	}
	return p, nil
}

// watchAgent notices the agent's end. One closed on purpose is left alone;
// one that died while its connection is still up is restarted in the
// background with backoff; one that died with its connection starts again
// on the next use (the node may be gone).
func (s *Service) watchAgent(cluster string, t nodeTarget, na *nodeAgent, c *agent.Client, conn *sshx.Client) {
	select {
	case <-c.Done():
	case <-s.ctx.Done():
		return
	}
	s.m.agents.Dec()
	na.mu.Lock()
	intentional := na.intentional[c]
	delete(na.intentional, c)
	if na.cur == c {
		na.cur = nil
	}
	na.mu.Unlock()
	if intentional || s.ctx.Err() != nil {
		return
	}
	log := s.log.With("cluster", cluster, "node", t.Label)
	log.Warn("node agent ended", "err", c.Err())
	delay := s.cfg.AgentRestartBackoff
	for attempt := 0; attempt < 6; attempt++ {
		select {
		case <-conn.Done():
			return
		case <-s.ctx.Done():
			return
		default:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AgentStartTimeout)
		nc, err := s.agentFor(ctx, cluster, t)
		cancel()
		if nc != nil {
			s.countRestart(na, "died")
			log.Info("node agent restarted", "pid", nc.Hello().PID)
			return
		}
		var un *agentUnavailableError
		if errors.As(err, &un) {
			return
		}
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (s *Service) countRestart(na *nodeAgent, reason string) {
	na.mu.Lock()
	na.restarts++
	na.mu.Unlock()
	s.m.restarts.WithLabelValues(reason).Inc()
}

// restartAgent kills the node's agent (if any) and starts a fresh one.
func (s *Service) restartAgent(ctx context.Context, cluster string, t nodeTarget) (*agent.Client, error) {
	if s.cfg.DisableAgent {
		return nil, errAgentDisabled
	}
	na := s.nodeAgent(t.Target)
	na.mu.Lock()
	old := na.cur
	if old != nil {
		na.intentional[old] = true
		na.cur = nil
	}
	// An explicit restart re-checks a node marked unavailable too.
	na.unavailable, na.startErr = "", nil
	na.mu.Unlock()
	if old != nil {
		_ = old.Close()
		select {
		case <-old.Done():
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	c, err := s.agentFor(ctx, cluster, t)
	if c != nil {
		s.countRestart(na, "requested")
	}
	return c, err
}

// agentState describes a node's agent for status: its state and why.
func (s *Service) agentState(na *nodeAgent, err error) (string, string) {
	var un *agentUnavailableError
	switch {
	case err == nil:
		return api.AgentRunning, ""
	case errors.Is(err, errAgentDisabled):
		return api.AgentDisabled, "agent disabled; using plain SSH sessions"
	case errors.As(err, &un):
		return api.AgentUnavailable, "agent unavailable: " + un.reason + "; using plain SSH sessions"
	}
	return api.AgentError, err.Error() + "; using plain SSH sessions meanwhile"
}

// closeAgents ends every agent (they kill their commands and exit).
func (s *Service) closeAgents() {
	s.mu.Lock()
	var cs []*agent.Client
	for _, na := range s.agents {
		na.mu.Lock()
		if na.cur != nil {
			na.intentional[na.cur] = true
			cs = append(cs, na.cur)
			na.cur = nil
		}
		na.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}
