package sshx

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rhq/rh/internal/lazyre"
)

// RunRequest is one command to run on a node.
type RunRequest struct {
	// Command is run by the login shell, as `ssh host Command` would.
	Command string
	// Env is exported before Command. The values never appear on the
	// remote command line (which every user of the node can read in ps):
	// they go first on the command's stdin, which a prefix of the script
	// reads, one encoded line per variable, before the command runs. (SSH
	// "env" requests would do, but sshd refuses them unless AcceptEnv lists
	// each name.)
	Env map[string]string
	// Dir is the working directory; a leading "~/" means the home.
	Dir string
	// Stdin feeds the command; nil gives it an empty stdin.
	Stdin io.Reader
	// Stdout and Stderr receive output as it arrives; nil discards it.
	Stdout, Stderr io.Writer
}

var envName = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ShellQuote quotes s for a POSIX shell: single quotes, with each embedded
// single quote written as '\”.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// script prefixes the command with the line that reports the process
// group, the exports and the cd. sshd starts every command in a new
// session (setsid), so the login shell's $$ is the id of the process group
// and session that hold everything the command starts.
func script(req RunRequest, marker string) (string, error) {
	if _, err := envInput(req.Env); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "printf '%%s%%s\\n' '%s' \"$$\" >&2\n", marker)
	if len(req.Env) > 0 {
		// Reads "NAME=octal-escaped value" lines until an empty one; read
		// takes a pipe byte by byte, so the command's own stdin is intact.
		b.WriteString(`while IFS= read -r __rh_kv && [ -n "$__rh_kv" ]; do __rh_v=$(printf '%bx' "${__rh_kv#*=}"); export "${__rh_kv%%=*}=${__rh_v%x}"; done; unset __rh_kv __rh_v` + "\n")
	}
	if req.Dir != "" {
		if rest, ok := strings.CutPrefix(req.Dir, "~/"); ok {
			fmt.Fprintf(&b, "cd -- \"$HOME\"/%s || exit 1\n", ShellQuote(rest))
		} else {
			fmt.Fprintf(&b, "cd -- %s || exit 1\n", ShellQuote(req.Dir))
		}
	}
	b.WriteString(req.Command)
	return b.String(), nil
}

// envInput encodes env for the script's reading prefix: one line per
// variable, NAME=value with every byte but [A-Za-z0-9_./-] written as a
// printf %b octal escape (so a value may hold newlines), then an empty line.
func envInput(env map[string]string) ([]byte, error) {
	if len(env) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		v := env[k]
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("invalid environment variable name %q", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("environment variable %s contains a NUL byte", k)
		}
		b.WriteString(k)
		b.WriteByte('=')
		for i := 0; i < len(v); i++ {
			c := v[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '/', c == '-':
				b.WriteByte(c)
			default:
				fmt.Fprintf(&b, `\0%03o`, c)
			}
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Run runs req on c, streaming output, and returns the command's exit
// code. A command killed by a signal reports 128 + the signal number (137
// for KILL), as shells do; a non-zero exit code is not an error. err is
// set only when the command could not run to completion: then the code is
// -1. When ctx ends first, Run kills the command's whole process group on
// the node (closing the channel would leave it running: sshd does not
// signal non-pty commands) and returns an error matching ctx.Err() (and
// ErrTimeout for deadlines). Run returns only after the last write to
// Stdout and Stderr.
func Run(ctx context.Context, c *Client, req RunRequest) (int, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	marker := "__rh_pgid_" + hex.EncodeToString(nonce[:]) + "="
	cmd, err := script(req, marker)
	if err != nil {
		return -1, &Error{Op: "run on", Target: c.target, Detail: err.Error()}
	}
	s, err := c.openSession(ctx, true)
	if err != nil {
		return -1, err
	}
	defer s.release()
	defer s.Close()

	s.Stdout = req.Stdout
	if s.Stdout == nil {
		s.Stdout = io.Discard
	}
	stderr := req.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	mw := &markerWriter{w: stderr, marker: []byte(marker), pgid: make(chan int, 1)}
	s.Stderr = mw
	stdin, err := s.StdinPipe()
	if err != nil {
		return -1, classify(ctx, "run on", c.target, err)
	}
	if err := s.Start(cmd); err != nil {
		return -1, classify(ctx, "run on", c.target, err)
	}
	envIn, _ := envInput(req.Env) // checked by script
	if req.Stdin != nil || envIn != nil {
		in := io.Reader(bytes.NewReader(envIn))
		if req.Stdin != nil {
			in = io.MultiReader(in, req.Stdin)
		}
		// Our own copy, not Session.Stdin: Wait would otherwise block
		// until the caller's reader hits EOF, even after the command ended.
		go func() {
			_, _ = io.Copy(stdin, in)
			stdin.Close()
		}()
	} else {
		stdin.Close()
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()

	select {
	case err := <-waited:
		mw.flush()
		return exitCode(ctx, c, err)
	case <-ctx.Done():
	}
	c.killRemote(s, mw)
	s.Close()
	select {
	case <-waited:
	case <-time.After(2 * time.Second): // connection dead: nothing more will arrive
	}
	return -1, classify(ctx, "run on", c.target, ctx.Err())
}

// killRemote stops the process group of a cancelled command as the agent
// does: SIGTERM, and SIGKILL to what is left after StopGrace. First with
// SSH "signal" requests (OpenSSH 8.1+ sends them to the group), then, as
// that is not universal, with kill from a second session, waiting there
// until the group is gone.
func (c *Client) killRemote(s *session, mw *markerWriter) {
	var pgid int
	select {
	case pgid = <-mw.pgid:
	case <-time.After(2 * time.Second):
	}
	_ = s.Signal(ssh.SIGTERM)
	if pgid <= 1 || !c.alive() {
		_ = s.Signal(ssh.SIGKILL)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), StopGrace+10*time.Second)
	defer cancel()
	// Outside the slot count: this must not wait behind other runs.
	ks, err := c.openSession(ctx, false)
	if err != nil {
		_ = s.Signal(ssh.SIGKILL)
		return
	}
	defer ks.Close()
	// If $$ were not a group leader these ids would name no group or
	// session and the kills would do nothing, never hit anything else.
	_ = ks.Run(stopScript(pgid))
}

// groupRunsShell defines the shell function runs: whether a process of
// group $P still runs. kill -0 alone counts zombies too, which a node whose
// PID 1 never reaps (a container's) keeps for good, and a stop would always
// wait out the whole grace; /proc tells them apart ("pid (comm) state ppid
// pgrp ...", comm holding anything, so cut at its last ") ").
const groupRunsShell = `runs() {
  [ -r /proc/self/stat ] || { kill -0 -- -$P 2>/dev/null; return; }
  for f in /proc/[0-9]*/stat; do
    read -r l < "$f" 2>/dev/null || continue
    l=${l##*) }
    set -- $l
    [ "$3" = "$P" ] && [ "$1" != Z ] && return 0
  done
  return 1
}
`

// stopScript is the shell script that stops process group pgid: SIGTERM,
// and SIGKILL to what still runs after StopGrace.
func stopScript(pgid int) string {
	graceTicks := strconv.Itoa(int(StopGrace / (100 * time.Millisecond)))
	return groupRunsShell + "P=" + strconv.Itoa(pgid) + "\n" +
		"kill -TERM -- -$P 2>/dev/null; pkill -TERM -s $P 2>/dev/null\n" +
		"i=0; while runs && [ $i -lt " + graceTicks + " ]; do sleep 0.1; i=$((i+1)); done\n" +
		"kill -KILL -- -$P 2>/dev/null; pkill -KILL -s $P 2>/dev/null\n" +
		"i=0; while runs && [ $i -lt 40 ]; do sleep 0.1; i=$((i+1)); done; true\n"
}

// StopGrace is how long a cancelled or timed-out command's process group
// has between SIGTERM and SIGKILL, here and in the agent: time to save a
// checkpoint or remove its runtime files, as `docker stop` gives (10 s
// there).
const StopGrace = 5 * time.Second

var signals = map[ssh.Signal]int{
	ssh.SIGHUP: 1, ssh.SIGINT: 2, ssh.SIGQUIT: 3, ssh.SIGILL: 4, "TRAP": 5, ssh.SIGABRT: 6,
	"BUS": 7, ssh.SIGFPE: 8, ssh.SIGKILL: 9, ssh.SIGUSR1: 10, ssh.SIGSEGV: 11,
	ssh.SIGUSR2: 12, ssh.SIGPIPE: 13, ssh.SIGALRM: 14, ssh.SIGTERM: 15,
}

func exitCode(ctx context.Context, c *Client, err error) (int, error) {
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if sig := ee.Signal(); sig != "" {
			if n, ok := signals[ssh.Signal(sig)]; ok {
				return 128 + n, nil
			}
			return 255, nil // an unnamed signal: like OpenSSH's client
		}
		return ee.ExitStatus(), nil
	case errors.As(err, &missing):
		return -1, &Error{Op: "run on", Target: c.target, Kind: ErrConnLost,
			Detail: "the connection ended before the command reported its exit status", Err: err}
	default:
		return -1, classify(ctx, "run on", c.target, err)
	}
}

// markerWriter passes stderr through, minus the line reporting the
// process group, which it delivers on pgid. Lines before the marker (a
// noisy shell rc file) are kept. If no marker shows up in the first 64 KiB
// it gives up looking.
type markerWriter struct {
	w      io.Writer
	marker []byte
	pgid   chan int

	mu    sync.Mutex
	found bool
	buf   []byte
}

const markerSearchMax = 64 << 10

func (m *markerWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.found {
		return m.w.Write(p)
	}
	m.buf = append(m.buf, p...)
	if i := bytes.Index(m.buf, m.marker); i >= 0 {
		rest := m.buf[i+len(m.marker):]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return len(p), nil
		}
		if n, err := strconv.Atoi(string(rest[:nl])); err == nil {
			m.pgid <- n
		}
		m.found = true
		out := append(m.buf[:i:i], rest[nl+1:]...)
		m.buf = nil
		if len(out) > 0 {
			if _, err := m.w.Write(out); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	if len(m.buf) > markerSearchMax {
		m.found = true
		out := m.buf
		m.buf = nil
		if _, err := m.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (m *markerWriter) flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.buf) > 0 {
		_, _ = m.w.Write(m.buf)
		m.buf = nil
	}
	m.found = true
}
