package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx := ctxT(t, 20*time.Second)
	var out, errb bytes.Buffer
	code, err := c.Run(ctx, RunRequest{Shell: "echo out; echo err >&2; exit 3", Stdout: &out, Stderr: &errb})
	if err != nil || code != 3 || out.String() != "out\n" || errb.String() != "err\n" {
		t.Fatalf("Run = %d, %v; stdout %q stderr %q", code, err, out.String(), errb.String())
	}
	if code, err := c.Run(ctx, RunRequest{Argv: []string{"sh", "-c", "kill -9 $$"}}); err != nil || code != 137 {
		t.Fatalf("killed by SIGKILL: %d, %v; want 137", code, err)
	}
	if code, err := c.Run(ctx, RunRequest{Argv: []string{"true"}}); err != nil || code != 0 {
		t.Fatalf("true: %d, %v", code, err)
	}
	if _, err := c.Run(ctx, RunRequest{Argv: []string{filepath.Join(t.TempDir(), "prog")}}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing program: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRunBinary10MB(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx := ctxT(t, 30*time.Second)
	data := make([]byte, 10<<20)
	rand.Read(data)
	f := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)

	h := sha256.New()
	code, err := c.Run(ctx, RunRequest{Argv: []string{"cat", f}, Stdout: h})
	if err != nil || code != 0 {
		t.Fatalf("cat: %d, %v", code, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("10 MB output: checksum mismatch")
	}
	// And through stdin, both directions at once.
	h.Reset()
	code, err = c.Run(ctx, RunRequest{Argv: []string{"cat"}, Stdin: bytes.NewReader(data), Stdout: h})
	if err != nil || code != 0 {
		t.Fatalf("cat stdin: %d, %v", code, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("10 MB through stdin: checksum mismatch")
	}
}

func TestRunEnvDir(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	dir := t.TempDir()
	var out bytes.Buffer
	code, err := c.Run(ctxT(t, 10*time.Second), RunRequest{Shell: `printf '%s|%s' "$FOO" "$(pwd -P)"`,
		Env: map[string]string{"FOO": "bar 'baz'\n"}, Dir: dir, Stdout: &out})
	real, _ := filepath.EvalSymlinks(dir)
	if err != nil || code != 0 || out.String() != "bar 'baz'\n|"+real {
		t.Fatalf("Run = %d, %v, %q", code, err, out.String())
	}
	if _, err := c.Run(ctxT(t, 10*time.Second), RunRequest{Argv: []string{"true"}, Env: map[string]string{"A=B": "x"}}); err == nil {
		t.Fatal("invalid env name accepted")
	}
	// A working directory that is not one is named as such, not blamed on
	// the shell (exec's own error says "fork/exec /bin/sh: no such file").
	for _, bad := range []struct{ dir, why string }{
		{filepath.Join(dir, "missing"), "no such file or directory"},
		{filepath.Join(dir, "file"), "not a directory"},
	} {
		_ = os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
		_, err := c.Run(ctxT(t, 10*time.Second), RunRequest{Shell: "pwd", Dir: bad.dir})
		if want := "working directory " + bad.dir + ": " + bad.why; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "/bin/sh") {
			t.Errorf("Run in %s: %v, want an error saying %q", bad.dir, err, want)
		}
	}
}

// lineWaiter collects output and signals when n lines arrived.
type lineWaiter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	n     int
	ready chan struct{}
	once  sync.Once
}

func (l *lineWaiter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if bytes.Count(l.buf.Bytes(), []byte("\n")) >= l.n {
		l.once.Do(func() { close(l.ready) })
	}
	return len(p), nil
}

func (l *lineWaiter) pids(t *testing.T) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var pids []int
	for _, f := range strings.Fields(l.buf.String()) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("bad pid %q", f)
		}
		pids = append(pids, p)
	}
	return pids
}

// A cancelled command gets SIGTERM first, so it can save its work (a
// checkpoint, Jupyter's runtime files); one that ignores SIGTERM is killed
// after the grace period.
func TestRunCancelTermsFirstThenKills(t *testing.T) {
	t.Run("cleans up", func(t *testing.T) {
		t.Parallel()
		c, _ := pipeAgent(t, ServeOptions{})
		saved := filepath.Join(t.TempDir(), "saved")
		ctx, cancel := context.WithCancel(ctxT(t, 30*time.Second))
		lw := &lineWaiter{n: 1, ready: make(chan struct{})}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Run(ctx, RunRequest{Shell: `trap 'echo checkpoint > "$F"; exit 0' TERM; echo $$; while :; do sleep 0.05; done`,
				Env: map[string]string{"F": saved}, Stdout: lw})
			errc <- err
		}()
		<-lw.ready
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
		testkit.WaitFile(t, 10*time.Second, "the command's clean-up", saved, "checkpoint\n")
	})
	t.Run("ignores TERM", func(t *testing.T) {
		t.Parallel()
		c, _ := pipeAgent(t, ServeOptions{})
		ctx, cancel := context.WithCancel(ctxT(t, 30*time.Second))
		lw := &lineWaiter{n: 1, ready: make(chan struct{})}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Run(ctx, RunRequest{Shell: `trap '' TERM; echo $$; while :; do sleep 0.05; done`, Stdout: lw})
			errc <- err
		}()
		<-lw.ready
		pid := lw.pids(t)[0]
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
		testkit.WaitErr(t, 20*time.Second, "the process that ignored SIGTERM killed", func() error { return processGone(pid) })
	})
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx, cancel := context.WithCancel(ctxT(t, 20*time.Second))
	lw := &lineWaiter{n: 3, ready: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, RunRequest{Shell: `sleep 100 & echo $!; sleep 100 & echo $!; echo $$; wait`, Stdout: lw})
		errc <- err
	}()
	select {
	case <-lw.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no pids reported")
	}
	pids := lw.pids(t)
	st, err := c.Status(ctxT(t, 5*time.Second))
	if err != nil || len(st.Runs) != 1 || !strings.Contains(st.Runs[0].Command, "sleep 100") {
		t.Fatalf("status while running: %+v, %v", st.Runs, err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, pid := range pids {
		testkit.WaitErr(t, 5*time.Second, "process group killed", func() error { return processGone(pid) })
	}
	t.Logf("cancel → Run returned and %d processes gone in %s", len(pids), time.Since(start))
	testkit.WaitErr(t, 5*time.Second, "run list empty", func() error {
		st, err := c.Status(ctxT(t, 5*time.Second))
		if err != nil || len(st.Runs) != 0 {
			return fmt.Errorf("runs %+v, %v", st.Runs, err)
		}
		return nil
	})
}

func TestRunTimeout(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	start := time.Now()
	code, err := c.Run(ctxT(t, 20*time.Second), RunRequest{Shell: "sleep 30", Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || code != -1 {
		t.Fatalf("Run = %d, %v; want ErrTimeout", code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}
	// A client-side deadline also maps to ErrTimeout and kills the command.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Run(ctx, RunRequest{Shell: "sleep 30"}); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v", err)
	}
}

func TestRunConcurrent100(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx := ctxT(t, 40*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out, errb bytes.Buffer
			// Enough output that streams interleave and use flow control.
			code, err := c.Run(ctx, RunRequest{
				Shell:  fmt.Sprintf(`i=0; while [ $i -lt 200 ]; do echo "line $i of %d"; i=$((i+1)); done; echo e%d >&2; exit %d`, i, i, i),
				Stdout: &out, Stderr: &errb})
			var want strings.Builder
			for j := range 200 {
				fmt.Fprintf(&want, "line %d of %d\n", j, i)
			}
			switch {
			case err != nil:
				errs <- fmt.Errorf("run %d: %w", i, err)
			case code != i:
				errs <- fmt.Errorf("run %d: exit code %d", i, code)
			case out.String() != want.String():
				errs <- fmt.Errorf("run %d: stdout of %d bytes differs", i, out.Len())
			case errb.String() != fmt.Sprintf("e%d\n", i):
				errs <- fmt.Errorf("run %d: stderr %q", i, errb.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestServeExitsOnEOF: the SSH session ending (stdin EOF) stops the agent
// and kills what it runs.
func TestServeExitsOnEOF(t *testing.T) {
	c, done := pipeAgent(t, ServeOptions{})
	lw := &lineWaiter{n: 1, ready: make(chan struct{})}
	go c.Run(context.Background(), RunRequest{Shell: `sleep 100 & echo $!; wait`, Stdout: lw})
	select {
	case <-lw.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no pid reported")
	}
	pid := lw.pids(t)[0]
	c.Close()
	select {
	case <-done.done:
		if done.err != nil {
			t.Fatalf("Serve = %v, want nil on EOF", done.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return on EOF")
	}
	testkit.WaitErr(t, 5*time.Second, "command killed at EOF", func() error { return processGone(pid) })
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if _, err := c.Run(context.Background(), RunRequest{Argv: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestFactsAndStatus(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx := ctxT(t, 10*time.Second)
	f, err := c.Facts(ctx)
	if err != nil || f.OS != "linux" || f.Arch == "" || f.Kernel == "" || f.CPUs < 1 || f.MemoryBytes == 0 {
		t.Fatalf("Facts = %+v, %v", f, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.AgentVersion != Version || len(st.Disks) == 0 || st.MemoryTotal == 0 || st.CPUPercent < 0 || st.CPUPercent > 100 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if h := c.Hello(); h.Role != "agent" || h.Protocol != ProtocolVersion || h.PID != os.Getpid() {
		t.Fatalf("Hello = %+v", h)
	}
	_ = io.Discard
}

// TestRunBackgroundChildDoesNotHold: a command that leaves a silent child
// holding its stdout returns when the command exits (plus a short drain),
// not when the child does.
func TestRunBackgroundChildDoesNotHold(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	var out bytes.Buffer
	start := time.Now()
	code, err := c.Run(ctxT(t, 20*time.Second), RunRequest{Shell: "sleep 30 & echo $!", Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run waited %s for the background child", d)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// A zombie left in a cancelled command's group (a container whose PID 1
// never reaps keeps its orphans so) does not count as the group running,
// so stopping it need not wait out the grace.
func TestAGroupOfZombiesIsNotRunning(t *testing.T) {
	if !groupRuns(testkit.RunningGroup(t)) {
		t.Fatal("a group with a sleeping process does not run")
	}
	if groupRuns(testkit.ZombieGroup(t)) {
		t.Error("a group of only a zombie counts as running")
	}
}
