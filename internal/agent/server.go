package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/rhq/rh/internal/filesync"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Logger receives the agent's own log. Default slog.Default(). Never
	// stdout: that carries the protocol.
	Logger *slog.Logger
	// ShutdownGrace bounds how long Serve waits for handlers to finish
	// (commands to be killed and reaped) after the connection ends.
	// Default 5s.
	ShutdownGrace time.Duration

	// allowOp, when set, restricts the operations served (the fuzz test
	// must not run commands or touch files).
	allowOp func(op string) bool
}

type server struct {
	log     *slog.Logger
	conn    *conn
	started time.Time
	opts    ServeOptions
	wg      sync.WaitGroup

	mu   sync.Mutex
	runs map[uint32]RunInfo
	cpu  cpuSampler
}

// Serve runs the agent over r (requests) and w (responses): the stdin and
// stdout of `rhcli agent`. It returns nil when r reaches EOF (the SSH session
// ended), after killing every command still running; ctx ending stops it too.
func Serve(ctx context.Context, r io.Reader, w io.Writer, opts ServeOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var closer io.Closer
	if rc, ok := r.(io.Closer); ok {
		closer = rc
	}
	srv := &server{log: log, started: time.Now(), opts: opts, runs: map[uint32]RunInfo{}}
	c := newConn(ctx, r, w, closer, log, true)
	srv.conn = c
	c.onOpen = srv.open
	peer, _, err := c.handshake(ctx, localHello("agent"))
	if err != nil {
		c.fail(err)
		if errors.Is(err, io.EOF) {
			return nil // probed with </dev/null: hello written, nobody there
		}
		return err
	}
	log.Debug("agent: client connected", "client_version", peer.AgentVersion, "protocol", peer.Protocol)
	go c.readLoop()
	select {
	case <-c.dead:
	case <-ctx.Done():
		c.fail(ctx.Err())
	}
	// fail cancelled every stream's context: handlers are killing their
	// process groups now. Wait for that, bounded.
	done := make(chan struct{})
	go func() { srv.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(opts.ShutdownGrace):
		log.Warn("agent: handlers still running at shutdown")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Err(); err != nil && !isCleanClose(err) {
		return err
	}
	return nil
}

// isCleanClose tells a peer that hung up (EOF) from a failure.
func isCleanClose(err error) bool { return err == ErrClosed }

// Main is the body of `rhcli agent`: it serves os.Stdin/os.Stdout until the
// session ends and returns the exit code. It first moves the protocol off
// file descriptor 1, pointing fd 1 at stderr, so a stray print anywhere in
// the process cannot corrupt the frame stream (and a broken stdout gives
// EPIPE errors instead of SIGPIPE). Log level: RH_AGENT_LOG=debug|info|warn.
func Main(ctx context.Context) int {
	level := slog.LevelWarn
	_ = level.UnmarshalText([]byte(os.Getenv("RH_AGENT_LOG")))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	out, err := protectStdout()
	if err != nil {
		log.Error("agent: cannot set up stdout", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Serve(ctx, os.Stdin, out, ServeOptions{Logger: log}); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("agent: stopped", "err", err)
		return 1
	}
	return 0
}

// open is called on the read loop for each OPEN frame.
func (srv *server) open(s *stream, payload []byte) {
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer srv.conn.forget(s)
		defer s.cancel(nil)
		defer func() {
			if p := recover(); p != nil {
				srv.log.Error("agent: handler panicked", "stream", s.id, "panic", p, "stack", string(debug.Stack()))
				s.reset(fmt.Sprintf("internal error: %v", p))
			}
		}()
		srv.handle(s, payload)
	}()
}

type opHeader struct {
	Op string `json:"op"`
}

type handler func(srv *server, s *stream, payload []byte) (any, error)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"ping":          (*server).ping,
		"facts":         (*server).facts,
		"status":        (*server).status,
		"run":           (*server).run,
		"fs.stat":       (*server).fsStat,
		"fs.walk":       (*server).fsWalk,
		"fs.open":       (*server).fsOpen,
		"fs.readat":     (*server).fsReadAt,
		"fs.create":     (*server).fsCreate,
		"fs.mkdirall":   (*server).fsMkdirAll,
		"fs.remove":     (*server).fsRemove,
		"fs.symlink":    (*server).fsSymlink,
		"fs.chmod":      (*server).fsChmod,
		"fs.chtimes":    (*server).fsChtimes,
		"fs.hashblocks": (*server).fsHashBlocks,
		"fs.patch":      (*server).fsPatch,
		"fs.writefiles": (*server).fsWriteFiles,
	}
}

func (srv *server) handle(s *stream, payload []byte) {
	var h opHeader
	if err := json.Unmarshal(payload, &h); err != nil {
		msg := "protocol error: malformed OPEN: " + err.Error()
		srv.log.Warn("agent: "+msg, "stream", s.id)
		s.reset(msg)
		return
	}
	fn := handlers[h.Op]
	if fn == nil || (srv.opts.allowOp != nil && !srv.opts.allowOp(h.Op)) {
		srv.result(s, nil, &codedError{code: codeUnsupported, msg: fmt.Sprintf("unknown operation %q", h.Op)})
		return
	}
	v, err := fn(srv, s, payload)
	srv.result(s, v, err)
}

type resultBody struct {
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
	Code  string          `json:"code,omitempty"`
}

func (srv *server) result(s *stream, v any, err error) {
	var body resultBody
	if err == nil && v != nil {
		b, merr := json.Marshal(v)
		if merr != nil {
			err = fmt.Errorf("encode result: %w", merr)
		} else {
			body.Value = b
		}
	}
	if err != nil {
		body.Error = err.Error()
		body.Code = codeOf(err)
	}
	if serr := srv.conn.sendJSON(frameResult, s.id, body); serr != nil && srv.conn.Err() == nil {
		s.reset(serr.Error())
	}
}

func decodeReq(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return &codedError{code: codeBadRequest, msg: "malformed request: " + err.Error()}
	}
	return nil
}

// Error codes carried in RESULT frames, so errors.Is works across the wire.
const (
	codeNotExist    = "notexist"
	codeExist       = "exist"
	codePermission  = "permission"
	codeChanged     = "changed"
	codeTimeout     = "timeout"
	codeCanceled    = "canceled"
	codeUnsupported = "unsupported"
	codeBadRequest  = "badrequest"
	codeEscape      = "escape"
)

// errnoCodes carry the node's errno across the wire for the file system
// errors a user can act on; without a code they would reach the gateway as
// unclassified, and the user would read "internal error".
var errnoCodes = []struct {
	errno syscall.Errno
	code  string
}{
	{syscall.ENOTDIR, "notdir"}, {syscall.EISDIR, "isdir"}, {syscall.ENAMETOOLONG, "nametoolong"},
	{syscall.ELOOP, "loop"}, {syscall.ENOSPC, "nospace"}, {syscall.EDQUOT, "quota"}, {syscall.EROFS, "readonly"},
}

// FileErrnos are the file system errnos that cross the wire: errors.Is
// matches a RemoteError against each.
func FileErrnos() []syscall.Errno {
	out := make([]syscall.Errno, len(errnoCodes))
	for i, ec := range errnoCodes {
		out[i] = ec.errno
	}
	return out
}

type codedError struct {
	code string
	msg  string
}

func (e *codedError) Error() string { return e.msg }

func codeOf(err error) string {
	var ce *codedError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, fs.ErrNotExist):
		return codeNotExist
	case errors.Is(err, fs.ErrExist):
		return codeExist
	case errors.Is(err, fs.ErrPermission):
		return codePermission
	case errors.Is(err, filesync.ErrChanged):
		return codeChanged
	case errors.Is(err, filesync.ErrEscape):
		return codeEscape
	case errors.Is(err, context.DeadlineExceeded):
		return codeTimeout
	case errors.Is(err, context.Canceled):
		return codeCanceled
	}
	for _, ec := range errnoCodes {
		if errors.Is(err, ec.errno) {
			return ec.code
		}
	}
	return ""
}

// ErrTimeout matches runs that hit their Timeout or their context deadline.
var ErrTimeout = errors.New("agent: timed out")

// ErrUnsupported matches operations the agent does not know (an older agent).
var ErrUnsupported = errors.New("agent: operation not supported by this agent")

// RemoteError is an operation that failed on the node. errors.Is matches
// fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, filesync.ErrChanged,
// filesync.ErrEscape, ErrTimeout, context.Canceled, ErrUnsupported and the
// errnos of errnoCodes by its code.
type RemoteError struct {
	Op   string
	Code string
	Msg  string
}

func (e *RemoteError) Error() string { return "agent: " + e.Op + ": " + e.Msg }

// Is maps the error code onto the standard sentinels.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case codeNotExist:
		return target == fs.ErrNotExist
	case codeExist:
		return target == fs.ErrExist
	case codePermission:
		return target == fs.ErrPermission
	case codeChanged:
		return target == filesync.ErrChanged
	case codeEscape:
		return target == filesync.ErrEscape
	case codeTimeout:
		return target == ErrTimeout || target == context.DeadlineExceeded
	case codeCanceled:
		return target == context.Canceled
	case codeUnsupported:
		return target == ErrUnsupported
	}
	for _, ec := range errnoCodes {
		if e.Code == ec.code {
			return target == ec.errno
		}
	}
	return false
}

func (srv *server) ping(s *stream, payload []byte) (any, error) {
	return struct{}{}, nil
}
