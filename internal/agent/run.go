package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rhq/rh/internal/sshx"
)

// RunRequest is one command to run on the node.
type RunRequest struct {
	// Argv runs a program directly (looked up in PATH). Exactly one of Argv
	// and Shell must be set.
	Argv []string
	// Shell is a command line for /bin/sh -c (with Login: the user's shell).
	Shell string
	// Login runs the command as `ssh node CMD` would: Shell by the user's
	// login shell ($SHELL -c), Argv exec'd by it word for word ("$@"), in
	// the environment the agent's own SSH session set up (its SSH_CLIENT,
	// SSH_CONNECTION, PATH, locale, and what the shell's rc file exported).
	// The rc file is not read again per command (see loginCommand).
	Login bool
	// Env is added to the agent's environment.
	Env map[string]string
	// Dir is the working directory; relative or "~/..." paths are taken
	// from the home directory. Default: the agent's (the login) directory.
	Dir string
	// Stdin feeds the command; nil gives it /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive output as it arrives; nil discards it.
	Stdout, Stderr io.Writer
	// Timeout, when positive, is enforced on the node: the process group is
	// killed and Run returns an error matching ErrTimeout.
	Timeout time.Duration
}

// RunInfo describes a running command in Status.
type RunInfo struct {
	ID      uint32    `json:"id"`
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}

type runOpen struct {
	Op        string            `json:"op"`
	Argv      []string          `json:"argv,omitempty"`
	Shell     string            `json:"shell,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Dir       string            `json:"dir,omitempty"`
	Stdin     bool              `json:"stdin,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
	Login     bool              `json:"login,omitempty"`
}

type runResult struct {
	ExitCode int `json:"exit_code"`
	Signal   int `json:"signal,omitempty"`
}

// drainGrace is how long output pipes may stay silent after the command
// exited before they are closed: a background child that inherited them
// would otherwise hold the run open for its whole life.
const drainGrace = 200 * time.Millisecond

func (srv *server) run(s *stream, payload []byte) (any, error) {
	var req runOpen
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	if (len(req.Argv) == 0) == (req.Shell == "") {
		return nil, &codedError{code: codeBadRequest, msg: "exactly one of argv and shell must be given"}
	}
	env := os.Environ()
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("invalid environment variable %q", k)}
		}
		env = append(env, k+"="+v)
	}
	var cmd *exec.Cmd
	switch {
	case req.Login:
		cmd = loginCommand(req.Shell, req.Argv)
		env = setEnv(env, "SHLVL", "1")
	case req.Shell != "":
		cmd = exec.Command("/bin/sh", "-c", req.Shell)
	default:
		cmd = exec.Command(req.Argv[0], req.Argv[1:]...)
	}
	cmd.Env = env
	cmd.Dir = expandHome(req.Dir)
	// exec reports a missing working directory as the program missing
	// ("fork/exec /bin/sh: no such file or directory"): say what it is.
	if cmd.Dir != "" {
		if err := isDir(cmd.Dir); err != nil {
			return nil, &codedError{code: codeOf(err), msg: fmt.Sprintf("working directory %s: %v", req.Dir, err)}
		}
	}
	// Its own process group, so cancelling kills everything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	var inR, inW *os.File
	if req.Stdin {
		if inR, inW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return nil, fmt.Errorf("pipe: %w", err)
		}
		cmd.Stdin = inR
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if inR != nil {
		inR.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		if inW != nil {
			inW.Close()
		}
		return nil, fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	command := req.Shell
	if command == "" {
		command = strings.Join(req.Argv, " ")
	}
	srv.mu.Lock()
	srv.runs[s.id] = RunInfo{ID: s.id, PID: pid, Command: command, Started: time.Now()}
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.runs, s.id)
		srv.mu.Unlock()
	}()

	ctx := s.ctx
	tctx := ctx
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}

	var exited atomic.Bool
	var pumps sync.WaitGroup
	for _, p := range []struct {
		f  *os.File
		ch byte
	}{{outR, chanStdout}, {errR, chanStderr}} {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			pump(ctx, s, p.f, p.ch, &exited)
		}()
	}
	if inW != nil {
		go feedStdin(ctx, s, inW)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	killed := false
	select {
	case werr = <-waited:
	case <-tctx.Done():
		killed = true
		werr = stopGroup(pid, waited)
	}
	exited.Store(true)
	if killed {
		killGroup(pid) // children forked while we were killing
	}
	now := time.Now()
	outR.SetReadDeadline(now.Add(drainGrace))
	errR.SetReadDeadline(now.Add(drainGrace))
	pumps.Wait()
	outR.Close()
	errR.Close()
	if inW != nil {
		inW.Close()
	}
	if killed {
		if ctx.Err() == nil {
			return nil, &codedError{code: codeTimeout, msg: fmt.Sprintf("timed out after %s; process group stopped (SIGTERM, SIGKILL after %s)", time.Duration(req.TimeoutMS)*time.Millisecond, sshx.StopGrace)}
		}
		return nil, &codedError{code: codeCanceled, msg: fmt.Sprintf("cancelled (%v); process group stopped (SIGTERM, SIGKILL after %s)", context.Cause(ctx), sshx.StopGrace)}
	}
	code, sig := exitStatus(werr)
	if code < 0 {
		return nil, fmt.Errorf("wait: %w", werr)
	}
	return runResult{ExitCode: code, Signal: sig}, nil
}

// loginCommand runs a command line, or argv word for word, by the user's
// shell ($SHELL, which sshd set for the agent's session), as sshd runs
// `ssh node CMD`. The agent's environment is its session's, so the command
// sees SSH_CLIENT and SSH_CONNECTION, PATH and locale as a plain session
// would. bash reads ~/.bashrc for a command from sshd (SSH_CLIENT set, shell
// level below 2); it did so when the agent started, exporting what it sets,
// and the exec of the agent left SHLVL at 0. SHLVL=1 keeps it from reading
// it again for every command, which would cost more than the agent saves
// (pyenv, conda) and race when a hundred commands start at once.
func loginCommand(shell string, argv []string) *exec.Cmd {
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/sh"
	}
	if len(argv) > 0 {
		return exec.Command(sh, append([]string{"-c", `exec "$@"`, "rh"}, argv...)...)
	}
	return exec.Command(sh, "-c", shell)
}

// isDir says why dir cannot be a working directory (an errno, so its code
// crosses the wire), or nil.
func isDir(dir string) error {
	st, err := os.Stat(dir)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case err != nil:
		return err
	case !st.IsDir():
		return syscall.ENOTDIR
	}
	return nil
}

// setEnv sets k=v in env, replacing any earlier value.
func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

// stopGroup ends a cancelled command: SIGTERM to its process group, then
// SIGKILL to whatever of the group is left after sshx.StopGrace, or nothing
// once the group is gone (a child may outlive the leader while it saves its
// work). It returns the leader's Wait error.
func stopGroup(pgid int, waited <-chan error) error {
	grace := time.NewTimer(sshx.StopGrace)
	defer grace.Stop()
	if pgid > 1 {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	var werr error
	select {
	case werr = <-waited:
	case <-grace.C:
		killGroup(pgid)
		return <-waited
	}
	// Each check reads all of /proc: often enough to return soon after the
	// group is gone, not so often that a busy node feels it.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for pgid > 1 && groupRuns(pgid) {
		select {
		case <-grace.C:
			killGroup(pgid)
			return werr
		case <-tick.C:
		}
	}
	return werr
}

// groupRuns says whether a process of group pgid still runs. kill(-pgid, 0)
// alone counts zombies too, and in a container whose PID 1 never reaps,
// a command's orphaned children stay zombies for good: a cancel would then
// always wait out the whole grace. /proc tells them apart.
func groupRuns(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return true // no /proc: believe kill
	}
	want := strconv.Itoa(pgid)
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid pgrp ...", where comm may hold anything.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 2 && f[2] == want && f[0] != "Z" {
			return true
		}
	}
	return false
}

func killGroup(pgid int) {
	if pgid > 1 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// exitStatus maps a Wait error to a shell-style exit code: 128+n for a
// signal. -1 means the error is not an exit status.
func exitStatus(err error) (code, sig int) {
	if err == nil {
		return 0, 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1, 0
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ee.ExitCode(), 0
}

// pump streams one output pipe. After the command exits, each read gets a
// fresh drainGrace deadline: output still flowing is delivered in full, a
// pipe held open by a silent background child is abandoned.
//
// A deadline error gets one more read before giving up: when the process
// was not scheduled for longer than drainGrace (a loaded machine), the
// deadline's timer can fire before the poller reports the output already
// in the pipe, and that output would be lost.
func pump(ctx context.Context, s *stream, f *os.File, ch byte, exited *atomic.Bool) {
	buf := make([]byte, 32<<10)
	retried := false
	for {
		if exited.Load() {
			f.SetReadDeadline(time.Now().Add(drainGrace))
		}
		n, err := f.Read(buf)
		if n > 0 {
			retried = false
			if serr := s.sendData(ctx, ch, buf[:n]); serr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !retried {
				retried = true
				continue
			}
			return
		}
	}
}

// feedStdin copies the client's stdin frames into the command.
func feedStdin(ctx context.Context, s *stream, w *os.File) {
	defer w.Close()
	for {
		e, err := s.next(ctx)
		if err != nil {
			return
		}
		switch e.typ {
		case frameData:
			_, werr := w.Write(e.data)
			s.consumed(len(e.data))
			if werr != nil {
				// The command stopped reading: keep consuming so the
				// client's sender is not left waiting for credit.
				w.Close()
			}
		case frameEOF, frameReset:
			return
		}
	}
}

func expandHome(dir string) string {
	if dir == "" {
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return dir
	}
	if dir == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(dir, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return dir
}

// Run runs req on the node and returns its exit code: 128+n when a signal
// n killed it, as shells report; a non-zero code is not an error. err is set
// (and the code is -1) only when the command could not run to completion.
// When ctx ends first, the command's process group is killed on the node
// before Run returns (bounded wait) and err matches ctx's error (and
// ErrTimeout for deadlines). Run returns only after the last write to
// Stdout and Stderr. A Stdin that blocks forever (os.Stdin) keeps one
// goroutine reading it after Run returns, as with os/exec. Safe for
// concurrent use.
func (c *Client) Run(ctx context.Context, req RunRequest) (int, error) {
	if (len(req.Argv) == 0) == (req.Shell == "") {
		return -1, errors.New("agent: run: exactly one of Argv and Shell must be set")
	}
	open := runOpen{Op: "run", Argv: req.Argv, Shell: req.Shell, Env: req.Env, Dir: req.Dir,
		Stdin: req.Stdin != nil, TimeoutMS: req.Timeout.Milliseconds(), Login: req.Login}
	if req.Timeout > 0 && open.TimeoutMS == 0 {
		open.TimeoutMS = 1
	}
	s, err := c.open(open)
	if err != nil {
		return -1, err
	}
	defer c.conn.forget(s)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if req.Stdin != nil {
		go feedRemote(runCtx, s, req.Stdin)
	}
	for {
		e, err := s.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return -1, c.abandon(s, "run", ctx)
			}
			return -1, fmt.Errorf("agent: run: %w", err)
		}
		switch e.typ {
		case frameData:
			w := req.Stdout
			if e.ch == chanStderr {
				w = req.Stderr
			}
			if w != nil {
				if _, werr := w.Write(e.data); werr != nil {
					s.reset("client could not write output")
					return -1, fmt.Errorf("agent: run: write output: %w", werr)
				}
			}
			s.consumed(len(e.data))
		case frameResult:
			var rr runResult
			if err := decodeResult("run", e.data, &rr); err != nil {
				return -1, err
			}
			return rr.ExitCode, nil
		case frameReset:
			return -1, &StreamError{Msg: string(e.data)}
		}
	}
}

// feedRemote sends r as the stream's input, then EOF.
func feedRemote(ctx context.Context, s *stream, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := s.sendData(ctx, chanIn, buf[:n]); serr != nil {
				return
			}
		}
		if err != nil {
			_ = s.c.sendCtrl(frameEOF, s.id, nil)
			return
		}
	}
}

// abandon handles ctx ending during an operation: the agent is told to
// stop (for a run: kill the process group), and we wait briefly for its
// acknowledgement so that "Run returned" means "the command is gone".
func (c *Client) abandon(s *stream, op string, ctx context.Context) error {
	cause := context.Cause(ctx)
	s.reset("cancelled by the client: " + cause.Error())
	wait, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		e, err := s.next(wait)
		if err != nil {
			break
		}
		if e.typ == frameData {
			s.consumed(len(e.data))
			continue
		}
		if e.typ == frameResult || e.typ == frameReset {
			break
		}
	}
	if errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("agent: %s: %w: %w", op, ErrTimeout, cause)
	}
	return fmt.Errorf("agent: %s: %w", op, cause)
}
