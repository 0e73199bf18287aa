package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the agent: uploaded to a node and
// started as `<binary> agent`, it serves like `rhcli agent` would. go test
// never passes a bare "agent" argument, so this cannot trigger by accident.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == "agent" {
		os.Exit(Main(context.Background()))
	}
	os.Exit(m.Run())
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

type pipeRWC struct {
	io.Reader
	w  *io.PipeWriter
	r  *io.PipeReader
	mu sync.Mutex
}

func (p *pipeRWC) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeRWC) Close() error {
	p.w.Close()
	p.r.Close()
	return nil
}

// pipeAgent serves an in-process agent over io.Pipes and returns a client
// for it, plus a channel yielding Serve's result.
func pipeAgent(t testing.TB, opts ServeOptions) (*Client, *served) {
	t.Helper()
	cr, sw := io.Pipe() // agent → client
	sr, cw := io.Pipe() // client → agent
	if opts.Logger == nil {
		opts.Logger = quietLog
	}
	done := &served{done: make(chan struct{})}
	go func() {
		done.err = Serve(context.Background(), sr, sw, opts)
		sw.Close() // the process exiting closes stdout
		close(done.done)
	}()
	c, err := NewClientOptions(ctxT(t, 10*time.Second), &pipeRWC{Reader: cr, r: cr, w: cw}, ClientOptions{Logger: quietLog})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-done.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after the client closed")
		}
	})
	return c, done
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// processGone reports nil when pid no longer runs (a zombie counts as gone:
// in a container nobody may reap reparented children).
func processGone(pid int) error {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
		return nil
	}
	return fmt.Errorf("process %d still running", pid)
}

// served is the outcome of an in-process Serve.
type served struct {
	done chan struct{}
	err  error // valid once done is closed
}
