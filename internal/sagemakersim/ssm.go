package sagemakersim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TargetPrefix starts every SSM target of a training job with remote debug
// enabled: sagemaker-training-job:<job-name>_algo-<n>.
const TargetPrefix = "sagemaker-training-job:"

// Target returns the SSM target of node n (1-based) of a job.
func Target(job string, n int) string {
	return fmt.Sprintf("%s%s_algo-%d", TargetPrefix, job, n)
}

// ParseTarget splits an SSM target into job name and 1-based node index.
func ParseTarget(target string) (job string, n int, err error) {
	rest, ok := strings.CutPrefix(target, TargetPrefix)
	if !ok {
		return "", 0, fmt.Errorf("SSM target %q does not start with %q", target, TargetPrefix)
	}
	i := strings.LastIndex(rest, "_algo-")
	if i <= 0 {
		return "", 0, fmt.Errorf("SSM target %q has no _algo-<n> suffix", target)
	}
	n, err = strconv.Atoi(rest[i+len("_algo-"):])
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("SSM target %q: bad node index", target)
	}
	return rest[:i], n, nil
}

// sessionInfo is the answer to opening a simulated SSM session.
type sessionInfo struct {
	Session     string `json:"session"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	User        string `json:"user"`
	HeartbeatMS int64  `json:"heartbeat_ms"`
}

type simError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeSimError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(simError{code, msg})
}

// heartbeat is how often a proxy session reports that it is alive; a session
// silent for three heartbeats no longer counts as activity.
func (s *Server) heartbeat() time.Duration {
	return max(s.scale(s.opts.Timings.KeepAliveTick)/2, 5*time.Millisecond)
}

// serveSim handles the simulator's own endpoints:
//
//	POST   /_sim/ssm/sessions?target=T   open a session: resolve T to its endpoint (counts as activity)
//	PUT    /_sim/ssm/sessions/ID         heartbeat
//	DELETE /_sim/ssm/sessions/ID         close
//	POST   /_sim/faults                  inject faults (JSON body, see faultRequest)
func (s *Server) serveSim(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_sim/")
	switch {
	case path == "ssm/sessions" && r.Method == http.MethodPost:
		s.openSession(w, r.URL.Query().Get("target"))
	case strings.HasPrefix(path, "ssm/sessions/") && (r.Method == http.MethodPut || r.Method == http.MethodDelete):
		id := strings.TrimPrefix(path, "ssm/sessions/")
		if !s.touchSession(id, r.Method == http.MethodDelete) {
			writeSimError(w, http.StatusNotFound, "SessionNotFound", "no session "+id)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "faults" && r.Method == http.MethodPost:
		s.serveFaults(w, r)
	default:
		writeSimError(w, http.StatusNotFound, "NotFound", "no such simulator endpoint")
	}
}

func (s *Server) openSession(w http.ResponseWriter, target string) {
	name, n, err := ParseTarget(target)
	if err != nil {
		writeSimError(w, http.StatusBadRequest, "InvalidTarget", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	switch {
	case !ok:
		writeSimError(w, http.StatusBadRequest, "InvalidTarget", "no training job "+name)
		return
	case j.status != statusInProgress || j.secondary != "Training":
		writeSimError(w, http.StatusBadRequest, "TargetNotConnected", fmt.Sprintf("%s is not connected (job is %s/%s)", target, j.status, j.secondary))
		return
	case n > len(j.nodes):
		writeSimError(w, http.StatusBadRequest, "TargetNotConnected", fmt.Sprintf("%s is not connected (job has %d reachable nodes)", target, len(j.nodes)))
		return
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := name + "." + hex.EncodeToString(b[:])
	if j.sessionBeats == nil {
		j.sessionBeats = map[string]time.Time{}
	}
	now := time.Now()
	j.sessionBeats[id] = now
	j.lastActivity = later(j.lastActivity, now)
	ep := j.nodes[n-1]
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(sessionInfo{Session: id, Host: ep.Host, Port: ep.Port, User: ep.User, HeartbeatMS: s.heartbeat().Milliseconds()})
}

func (s *Server) touchSession(id string, closeIt bool) bool {
	name, _, _ := strings.Cut(id, ".")
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	if !ok {
		return false
	}
	if _, ok := j.sessionBeats[id]; !ok {
		return false
	}
	now := time.Now()
	j.lastActivity = later(j.lastActivity, now)
	if closeIt {
		delete(j.sessionBeats, id)
	} else {
		j.sessionBeats[id] = now
	}
	return true
}

// later is the later of a and b: activity never moves the idle clock back,
// in particular not into a connection wait still running (the keep-alive
// script does not count idleness before that wait has ended).
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// liveSessionsLocked counts sessions heard from within three heartbeats and
// forgets the others (a proxy that died without closing).
func (s *Server) liveSessionsLocked(j *job) int {
	cutoff := time.Now().Add(-3 * s.heartbeat())
	for id, t := range j.sessionBeats {
		if t.Before(cutoff) {
			delete(j.sessionBeats, id)
		}
	}
	return len(j.sessionBeats)
}

// faultRequest is the body of POST /_sim/faults, for driving faults of a
// simulator run by `rhcli serve --sim` from outside.
type faultRequest struct {
	ThrottleNext         int    `json:"throttle_next,omitempty"`
	ThrottleForMS        int64  `json:"throttle_for_ms,omitempty"`
	InternalErrorNext    int    `json:"internal_error_next,omitempty"`
	ResourceLimitNext    int    `json:"resource_limit_next,omitempty"`
	LoseNextCreateAnswer int    `json:"lose_next_create_answer,omitempty"`
	FailNextJob          string `json:"fail_next_job,omitempty"`
	FailJob              string `json:"fail_job,omitempty"`
	FailReason           string `json:"fail_reason,omitempty"`
	InterruptSpot        string `json:"interrupt_spot,omitempty"`
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	var f faultRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeSimError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	if f.ThrottleNext > 0 {
		s.ThrottleNext(f.ThrottleNext)
	}
	if f.ThrottleForMS > 0 {
		s.ThrottleFor(time.Duration(f.ThrottleForMS) * time.Millisecond)
	}
	if f.InternalErrorNext > 0 {
		s.InternalErrorNext(f.InternalErrorNext)
	}
	if f.ResourceLimitNext > 0 {
		s.ResourceLimitNext(f.ResourceLimitNext)
	}
	if f.LoseNextCreateAnswer > 0 {
		s.LoseNextCreateAnswer(f.LoseNextCreateAnswer)
	}
	if f.FailNextJob != "" {
		s.FailNextJob(f.FailNextJob)
	}
	if f.FailJob != "" {
		if err := s.FailJob(f.FailJob, f.FailReason); err != nil {
			writeSimError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
			return
		}
	}
	if f.InterruptSpot != "" {
		if err := s.InterruptSpot(f.InterruptSpot); err != nil {
			writeSimError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ProxyMain is the simulator's stand-in for `aws ssm start-session --target T
// --document-name AWS-StartSSHSession`: used as an SSH ProxyCommand, it
// resolves target through the simulator at simURL, connects to the node's
// SSH endpoint and carries stdin/stdout over that TCP connection until the
// node closes it or ctx ends. While it runs, the session counts as activity
// for the job's idle autostop.
func ProxyMain(ctx context.Context, simURL, target string, stdin io.Reader, stdout io.Writer) error {
	base, err := url.Parse(strings.TrimSuffix(simURL, "/"))
	if err != nil {
		return fmt.Errorf("simulator URL: %w", err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	info, err := openProxySession(ctx, hc, base, target)
	if err != nil {
		return err
	}
	sessURL := base.JoinPath("_sim", "ssm", "sessions", info.Session).String()
	defer func() {
		// Close the session even when ctx is done: the simulator would
		// otherwise count it as activity until it times out.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = simCall(cctx, hc, http.MethodDelete, sessURL)
	}()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(info.Host, strconv.Itoa(info.Port)))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", target, err)
	}
	defer conn.Close()

	// Deferred in this order so that cancel runs before wg.Wait.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Heartbeats keep the session counted as live.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Duration(max(info.HeartbeatMS, 5)) * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = simCall(ctx, hc, http.MethodPut, sessURL)
			}
		}
	}()
	// Closing the connection when ctx ends unblocks both copies.
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		_ = conn.Close()
	}()
	// stdin → node; at EOF half-close so the node sees the end of input.
	// This goroutine is not waited for: a read from stdin cannot be
	// interrupted, and the process exits after ProxyMain returns anyway.
	go func() {
		_, _ = io.Copy(conn, stdin)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	// node → stdout decides when the session is over.
	_, err = io.Copy(stdout, conn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("session %s: %w", target, err)
	}
	return nil
}

func openProxySession(ctx context.Context, hc *http.Client, base *url.URL, target string) (*sessionInfo, error) {
	u := base.JoinPath("_sim", "ssm", "sessions")
	u.RawQuery = url.Values{"target": {target}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("opening SSM session to %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e simError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("opening SSM session to %s: %s: %s", target, e.Code, e.Message)
	}
	var info sessionInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("opening SSM session to %s: %w", target, err)
	}
	return &info, nil
}

func simCall(ctx context.Context, hc *http.Client, method, u string) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
