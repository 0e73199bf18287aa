package sshgateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/lazyre"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/svc"
)

// A run outlives any request timeout, so the run endpoint only validates,
// resolves the nodes and subscribes to the run's cancel and ack subjects,
// then answers RunAccepted and works in the background. Everything goes to
// the run request's own reply subject, the caller's inbox (a streamed
// answer on rh.stream.ssh.run), never to a subject the request names, so
// output reaches no one but the caller and cannot be made to look like
// another message of rh:
//
//   - each node's stdout and stderr go to the reply subject as
//     they are produced, in chunks of at most api.MaxChunk bytes, raw, with
//     headers naming node, stream and a run-wide sequence number. One lock
//     orders numbering and publishing, so the sequence is the order on the wire.
//   - flow control: at most Window chunks may be unacknowledged; the writer
//     then blocks, which blocks the SSH channel, which blocks the remote
//     process on its pipe. 10 MB or 10 GB of output never piles up in NATS.
//     A client that acknowledges nothing for ClientStall is gone: the run is
//     cancelled.
//   - each node ends with an "exit" message (code or error), the run with
//     one "done" message carrying every result. Heartbeats every Heartbeat
//     let a client tell a quiet command from a dead gateway.
//   - a message on the cancel subject (the client's Ctrl-C) cancels the
//     sshx.Run contexts, which kill the commands' process groups on the nodes.
//   - a run on one node may ask for input: the caller sends it to the stdin
//     subject a chunk per request, each answered once the node took it.
//     Cancels, acks and input count only from the user who started the run.
//   - no message before the end has an empty body: an empty message ends a
//     streamed answer, and one is sent after "done".

var runIDRe = lazyre.New(`^[A-Za-z0-9_-]{1,64}$`)

var (
	// errCancelled is the cause of a run cancelled by its client.
	errCancelled = errors.New("cancelled by the client")
	// errTimedOut is (wrapped) the cause of a run its TimeoutSeconds stopped.
	errTimedOut = errors.New("timed out")
)

// errStalled is the cause of a run whose client stopped reading.
var errStalled = errors.New("the client stopped reading the output")

type run struct {
	s  *Service
	id string
	// caller started the run; reply is the caller's inbox.
	caller  rh.Caller
	reply   string
	req     api.RunRequest
	nodes   []nodeTarget
	ctx     context.Context
	cancel  context.CancelCauseFunc
	window  int64
	acked   atomic.Int64
	ackSig  chan struct{}
	pubMu   sync.Mutex
	seq     int64
	subs    []*nats.Subscription
	started time.Time
	// stdin carries the caller's input to the node when the run asked for
	// it (nil otherwise); stdinW is where onStdin writes it.
	stdin  *io.PipeReader
	stdinW *io.PipeWriter
}

// runEndpoint serves rh.stream.ssh.run: RunAccepted first, then the run.
func (s *Service) runEndpoint(r micro.Request) {
	ctx, cancel, req, err := request[api.RunRequest](s, r, svc.Timeout)
	if err != nil {
		s.respondStreamError(r, err)
		return
	}
	defer cancel()
	rn, acc, err := s.startRun(ctx, req, r.Reply(), ownerFrom(ctx))
	if err != nil {
		s.respondStreamError(r, err)
		return
	}
	if err := r.RespondJSON(acc); err != nil {
		s.log.Warn("run: answer failed", "run_id", rn.id, "err", err)
		rn.stop()
		return
	}
	// Started only now, so RunAccepted is the first message on the reply.
	s.active.Store(rn.id, rn)
	s.runs.Go(func() {
		defer s.active.Delete(rn.id)
		rn.execute()
	})
}

// startRun validates a run, resolves its nodes and subscribes to its
// cancel and ack subjects, the latter under owner's control prefix; see the
// comment above.
func (s *Service) startRun(ctx context.Context, req api.RunRequest, reply, owner string) (*run, *api.RunAccepted, error) {
	if reply == "" {
		return nil, nil, rh.Invalid("reply", "a run is a request: its answer and output go to the reply subject")
	}
	switch {
	case req.Command != "" && len(req.Argv) > 0:
		return nil, nil, rh.Invalid("argv", "give a command line or argv, not both")
	case len(req.Argv) > 0:
		if req.Argv[0] == "" {
			return nil, nil, rh.Invalid("argv", "the first word (the program) must not be empty")
		}
		for i, w := range req.Argv {
			if strings.IndexByte(w, 0) >= 0 {
				return nil, nil, rh.Invalid("argv", "word %d contains a NUL byte", i)
			}
		}
	case strings.TrimSpace(req.Command) == "":
		return nil, nil, rh.Invalid("command", "must not be empty")
	}
	if req.TimeoutSeconds < 0 {
		return nil, nil, rh.Invalid("timeout_seconds", "%d is negative", req.TimeoutSeconds)
	}
	if req.RunID == "" {
		req.RunID = uuid.NewString()
	} else if !runIDRe.MatchString(req.RunID) {
		return nil, nil, rh.Invalid("run_id", "must be 1-64 letters, digits, '-' or '_'")
	} else if _, dup := s.active.Load(req.RunID); dup {
		// Its cancel and ack subjects are taken (and only its caller may use them).
		return nil, nil, rh.Conflict("run id %q is in use", req.RunID)
	}
	for k := range req.Env {
		if !envNameRe.MatchString(k) {
			return nil, nil, rh.Invalid("env", "%q is not a variable name", k)
		}
	}
	window := int64(req.Window)
	if window <= 0 {
		window = api.DefaultRunWindow
	}
	ts, err := s.clusterNodes(ctx, req.Name, rh.AccessWrite)
	if err != nil {
		return nil, nil, err
	}
	sel, err := selectNodes(req.Node, ts)
	if err != nil {
		return nil, nil, err
	}
	if req.Stdin && len(sel) != 1 {
		return nil, nil, rh.Invalid("stdin", "input goes to one node, and this run is on %d: choose one with node", len(sel))
	}
	caller := auth.CallerFrom(ctx)
	r := &run{s: s, id: req.RunID, caller: caller, reply: reply, req: req, nodes: sel, window: window, ackSig: make(chan struct{}, 1), started: time.Now()}
	r.ctx, r.cancel = context.WithCancelCause(s.ctx)
	// Subscribed before answering: a cancel right after the answer is not lost.
	cs, err := s.nc.Subscribe(api.RunCancelSubject(r.id), func(m *nats.Msg) {
		if r.fromCaller(m) {
			r.cancel(errCancelled)
		}
	})
	if err != nil {
		r.cancel(nil)
		return nil, nil, fmt.Errorf("sshgateway: subscribe cancel: %w", err)
	}
	as, err := s.nc.Subscribe(api.RunAckSubject(owner, r.id), r.onAck)
	if err != nil {
		_ = cs.Unsubscribe()
		r.cancel(nil)
		return nil, nil, fmt.Errorf("sshgateway: subscribe ack: %w", err)
	}
	r.subs = []*nats.Subscription{cs, as}
	var stdinSubject string
	if req.Stdin {
		stdinSubject = api.RunStdinSubject(owner, r.id)
		r.stdin, r.stdinW = io.Pipe()
		ss, err := s.nc.Subscribe(stdinSubject, r.onStdin)
		if err != nil {
			r.stop()
			return nil, nil, fmt.Errorf("sshgateway: subscribe stdin: %w", err)
		}
		r.subs = append(r.subs, ss)
		// The caller sends a chunk at a time, and only it may publish
		// here (its own control prefix); a client that floods its own
		// run's input has it dropped, not queued here without bound.
		if err := ss.SetPendingLimits(16, 16*api.MaxChunk); err != nil {
			r.stop()
			return nil, nil, fmt.Errorf("sshgateway: stdin limits: %w", err)
		}
	}
	if err := s.nc.Flush(); err != nil {
		r.stop()
		return nil, nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "NATS connection lost", Err: err}
	}
	labels := make([]string, len(sel))
	for i, t := range sel {
		labels[i] = t.Label
	}
	s.log.Info("run started", "cluster", req.Name, "run_id", r.id, "by", caller.User, "nodes", strings.Join(labels, ","))
	return r, &api.RunAccepted{RunID: r.id, Nodes: labels, CancelSubject: api.RunCancelSubject(r.id), AckSubject: api.RunAckSubject(owner, r.id),
		Window: int(window), StdinSubject: stdinSubject}, nil
}

var heartbeatBody = []byte("{}")

var envNameRe = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// sessionCommand is the shell command line a plain session runs for req:
// its Command, or its Argv with each word quoted for the shell.
func sessionCommand(req api.RunRequest) string {
	if len(req.Argv) > 0 {
		q := make([]string, len(req.Argv))
		for i, w := range req.Argv {
			q[i] = sshx.ShellQuote(w)
		}
		return strings.Join(q, " ")
	}
	return req.Command
}

func (r *run) stop() {
	if r.stdin != nil {
		// Unblocks an onStdin waiting for a command that reads no more.
		_ = r.stdin.CloseWithError(io.ErrClosedPipe)
	}
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	r.cancel(nil)
}

// onStdin hands a chunk of the caller's input to the node and answers once
// the node took it (io.Pipe), so the caller sends no faster than the
// command reads: input never piles up in NATS or here.
func (r *run) onStdin(m *nats.Msg) {
	if !r.fromCaller(m) {
		return
	}
	var err error
	switch {
	case m.Header.Get(api.HdrEOF) != "":
		err = r.stdinW.Close()
	case len(m.Data) > api.MaxChunk:
		err = rh.Invalid("stdin", "a chunk of %d bytes is over the %d-byte limit", len(m.Data), api.MaxChunk)
	case len(m.Data) == 0:
		// Nothing to hand over: an empty write would block until the
		// command reads, and then give it a read of nothing.
	default:
		if _, err = r.stdinW.Write(m.Data); errors.Is(err, io.ErrClosedPipe) {
			err = rh.Conflict("run %s reads no more input", r.id)
		}
	}
	if err != nil {
		respondMsgErr(m, err)
		return
	}
	_ = m.Respond([]byte("{}"))
}

// fromCaller reports whether a control message (cancel, ack, input) comes
// from the user who started the run; others are ignored (and told, if they
// ask). Acks and input are on the user's own prefix, which NATS already
// confines; the shared cancel subject relies on this check alone.
func (r *run) fromCaller(m *nats.Msg) bool {
	c, err := r.s.cfg.Auth.Caller(m.Header)
	if err == nil && c.User == r.caller.User {
		return true
	}
	if err == nil {
		err = rh.Forbidden("run %s belongs to another user", r.id)
	}
	respondMsgErr(m, err)
	return false
}

func (r *run) onAck(m *nats.Msg) {
	if !r.fromCaller(m) {
		return
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(m.Data)), 10, 64)
	if err != nil {
		return
	}
	for {
		old := r.acked.Load()
		if n <= old || r.acked.CompareAndSwap(old, n) {
			break
		}
	}
	select {
	case r.ackSig <- struct{}{}:
	default:
	}
}

func (r *run) execute() {
	defer r.stop()
	hbDone := make(chan struct{})
	go r.heartbeats(hbDone)
	results := make([]api.RunNodeResult, len(r.nodes))
	var wg sync.WaitGroup
	for i, t := range r.nodes {
		wg.Go(func() { results[i] = r.runOn(i, t) })
	}
	wg.Wait()
	close(hbDone)
	body, _ := json.Marshal(api.RunDone{RunID: r.id, Results: results})
	m := nats.NewMsg(r.reply)
	m.Header.Set(api.HdrEvent, api.EventDone)
	m.Data = body
	r.publish(m)
	r.s.endStream(r.reply)
	_ = r.s.nc.Flush()
	r.s.log.Info("run finished", "cluster", r.req.Name, "run_id", r.id, "duration", time.Since(r.started).Round(time.Millisecond))
}

func (r *run) heartbeats(done chan struct{}) {
	t := time.NewTicker(r.s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			m := nats.NewMsg(r.reply)
			m.Header.Set(api.HdrEvent, api.EventHeartbeat)
			m.Data = heartbeatBody // never empty: that would end the stream
			r.publish(m)
		}
	}
}

func (r *run) publish(m *nats.Msg) {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if err := r.s.nc.PublishMsg(m); err != nil {
		r.s.log.Warn("run: publish failed", "run_id", r.id, "err", err)
	}
}

// runOn runs the command on one node and publishes its exit.
func (r *run) runOn(i int, t nodeTarget) api.RunNodeResult {
	res := api.RunNodeResult{Node: t.Label, ExitCode: -1}
	m := r.s.m
	start := time.Now()
	// The command's own context: TimeoutSeconds counts from when it starts,
	// so a slow login or agent start on a busy node never eats into it.
	// Its timer stops only after the outcome is judged below: stopped
	// earlier, every error would read as a cancel.
	cmdCtx, stopTimer := r.ctx, context.CancelFunc(func() {})
	defer func() { stopTimer() }()
	code, err := func() (int, error) {
		if _, err := r.s.client(r.ctx, r.req.Name, t.Target); err != nil {
			return -1, err
		}
		ac, _ := r.s.agentFor(r.ctx, r.req.Name, t)
		if r.req.TimeoutSeconds > 0 {
			cmdCtx, stopTimer = context.WithTimeoutCause(r.ctx, time.Duration(r.req.TimeoutSeconds)*time.Second,
				fmt.Errorf("%w after %ds", errTimedOut, r.req.TimeoutSeconds))
		}
		stdout := &chunkWriter{r: r, node: t.Label, idx: i, stream: "stdout"}
		stderr := &chunkWriter{r: r, node: t.Label, idx: i, stream: "stderr"}
		var stdin io.Reader // a nil *io.PipeReader would not be a nil Reader
		if r.stdin != nil {
			stdin = r.stdin
		}
		if ac != nil {
			// Login: by the user's shell, in its session's environment, as a
			// plain session would run it (see agent.RunRequest.Login).
			code, err := ac.Run(cmdCtx, agent.RunRequest{
				Shell: r.req.Command, Argv: r.req.Argv, Login: true, Env: r.req.Env, Dir: r.req.Dir, Stdin: stdin, Stdout: stdout, Stderr: stderr,
			})
			// An agent that was gone before the command produced anything
			// (it died a moment ago): run it over a plain session instead,
			// unless it may have taken some of the input already.
			if !errors.Is(err, agent.ErrClosed) || stdout.n+stderr.n > 0 || cmdCtx.Err() != nil || stdin != nil {
				return code, err
			}
			r.s.log.Warn("node agent gone; running over a plain session", "node", t.Label, "run_id", r.id)
		}
		m.sessions.WithLabelValues("command").Inc()
		defer m.sessions.WithLabelValues("command").Dec()
		return r.s.pool.Run(cmdCtx, t.Target, sshx.RunRequest{
			Command: sessionCommand(r.req), Env: r.req.Env, Dir: r.req.Dir, Stdin: stdin, Stdout: stdout, Stderr: stderr,
		})
	}()
	outcome := "ok"
	switch {
	case err != nil && cmdCtx.Err() != nil:
		outcome = "cancelled"
		cause := context.Cause(cmdCtx)
		res.Error = cause.Error()
		res.TimedOut = errors.Is(cause, errTimedOut)
		if errors.Is(cause, context.Canceled) {
			res.Error = "the gateway is shutting down"
		}
	case err != nil:
		outcome = "error"
		res.Error = reason(r.req.Name, err)
	default:
		res.ExitCode = code
		if code != 0 {
			outcome = "nonzero"
		}
		m.commandTook(t.Kind, opRun, start)
	}
	m.commands.WithLabelValues(outcome).Inc()
	msg := nats.NewMsg(r.reply)
	msg.Data, _ = json.Marshal(res) // never empty: that would end the stream
	msg.Header.Set(api.HdrEvent, api.EventExit)
	msg.Header.Set(api.HdrNode, t.Label)
	msg.Header.Set(api.HdrNodeIdx, strconv.Itoa(i))
	msg.Header.Set(api.HdrExitCode, strconv.Itoa(res.ExitCode))
	if res.Error != "" {
		msg.Header.Set(api.HdrError, res.Error)
	}
	r.publish(msg)
	return res
}

// send publishes one chunk once the window has room.
func (r *run) send(node string, idx int, stream string, p []byte) error {
	stall := time.NewTimer(r.s.cfg.ClientStall)
	defer stall.Stop()
	for {
		r.pubMu.Lock()
		if r.seq-r.acked.Load() < r.window {
			r.seq++
			m := nats.NewMsg(r.reply)
			m.Header.Set(api.HdrEvent, api.EventData)
			m.Header.Set(api.HdrNode, node)
			m.Header.Set(api.HdrNodeIdx, strconv.Itoa(idx))
			m.Header.Set(api.HdrStream, stream)
			m.Header.Set(api.HdrSeq, strconv.FormatInt(r.seq, 10))
			m.Data = p
			err := r.s.nc.PublishMsg(m)
			r.pubMu.Unlock()
			if err != nil {
				return fmt.Errorf("publish output: %w", err)
			}
			r.s.m.bytes.WithLabelValues(stream).Add(float64(len(p)))
			return nil
		}
		r.pubMu.Unlock()
		select {
		case <-r.ackSig:
		case <-r.ctx.Done():
			return context.Cause(r.ctx)
		case <-stall.C:
			r.cancel(errStalled)
			return errStalled
		}
	}
}

// chunkWriter turns a node's output stream into chunks on the run stream.
type chunkWriter struct {
	r      *run
	node   string
	idx    int
	stream string
	n      int64 // bytes written so far
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), api.MaxChunk)]
		if err := w.r.send(w.node, w.idx, w.stream, c); err != nil {
			return n, err
		}
		n += len(c)
		w.n += int64(len(c))
		p = p[len(c):]
	}
	return n, nil
}
