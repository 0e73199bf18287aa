package e2e

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
)

// child is a process a test started: its output goes to log, and the
// test's cleanup stops it (if the test did not) and shows the log when the
// test failed, so no process outlives its test.
type child struct {
	name string
	cmd  *exec.Cmd
	log  *testkit.SyncBuffer
	done chan error
	err  error // the exit, once done has delivered it
	over bool
}

// childStop says how cleanup stops a child still running.
type childStop int

const (
	killAtCleanup      childStop = iota // SIGKILL: nothing to check
	termAtCleanup                       // SIGTERM, a kill after 30 s
	termCleanAtCleanup                  // SIGTERM, and the exit must be clean
)

func startChild(t *testing.T, name string, cmd *exec.Cmd, stop childStop) *child {
	t.Helper()
	c := &child{name: name, cmd: cmd, log: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		switch {
		case c.over:
		case stop == killAtCleanup:
			c.kill()
		default:
			if err, ok := c.term(); !ok {
				t.Errorf("%s did not stop within 30s of SIGTERM", name)
			} else if stop == termCleanAtCleanup && err != nil {
				t.Errorf("%s exited with %v after SIGTERM", name, err)
			}
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, c.log.String())
		}
	})
	return c
}

// term sends SIGTERM and waits up to 30 s for the exit; ok is false when
// it had to kill the process instead.
func (c *child) term() (exit error, ok bool) {
	if c.over {
		return c.err, true
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case c.err = <-c.done:
		c.over = true
		return c.err, true
	case <-time.After(30 * time.Second):
		c.kill()
		return c.err, false
	}
}

// kill ends the process at once.
func (c *child) kill() {
	if c.over {
		return
	}
	_ = c.cmd.Process.Kill()
	c.err, c.over = <-c.done, true
}
