package sshx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/testkit"
)

func poolEcho(ctx context.Context, p *sshx.Pool, tg sshx.Target) (string, error) {
	var out strings.Builder
	code, err := p.Run(ctx, tg, sshx.RunRequest{Command: "echo hello", Stdout: &out})
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	return out.String(), err
}

func TestPoolReusesOneConnection(t *testing.T) {
	t.Parallel()
	_, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	p := newPool(t)
	for i := 0; i < 2; i++ {
		if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
			t.Fatal(err)
		}
	}
	if p.Dials() != 1 {
		t.Fatalf("dials = %d after two runs, want 1", p.Dials())
	}
	// 20 at once: more than sshd's MaxSessions (10), so some queue.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out strings.Builder
			code, err := p.Run(ctxT(t, 30*time.Second), tg, sshx.RunRequest{Command: fmt.Sprintf("sleep 0.2; echo %d", i), Stdout: &out})
			if err == nil && (code != 0 || out.String() != fmt.Sprintf("%d\n", i)) {
				err = fmt.Errorf("run %d: code %d out %q", i, code, out.String())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p.Dials() != 1 || p.Len() != 1 {
		t.Fatalf("dials = %d, pooled = %d; want 1 and 1", p.Dials(), p.Len())
	}
}

func TestPoolReconnectsAfterRestart(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	p := newPool(t)
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
		t.Fatalf("run after restart: %v", err)
	}
	if p.Dials() != 2 {
		t.Fatalf("dials = %d, want 2", p.Dials())
	}
}

func TestPoolNodeKilled(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	p := newPool(t)
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
		t.Fatal(err)
	}
	n.Kill()
	_, err := poolEcho(ctxT(t, 10*time.Second), p, tg)
	if !errors.Is(err, sshx.ErrConnRefused) {
		t.Fatalf("err = %v, want ErrConnRefused", err)
	}
	if err := n.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
		t.Fatalf("after node came back: %v", err)
	}
}

func TestPoolIdleClose(t *testing.T) {
	t.Parallel()
	_, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	p := &sshx.Pool{Dialer: newDialer(), IdleTimeout: 200 * time.Millisecond}
	t.Cleanup(func() { p.Close() })
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
		t.Fatal(err)
	}
	testkit.WaitErr(t, 5*time.Second, "idle connection closed", func() error {
		if p.Len() != 0 {
			return errors.New("still pooled")
		}
		return nil
	})
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil || p.Dials() != 2 {
		t.Fatalf("after idle close: err %v dials %d", err, p.Dials())
	}
	p.Close()
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); !errors.Is(err, sshx.ErrPoolClosed) {
		t.Fatalf("closed pool: %v", err)
	}
}

func TestNetnsCutTimesOutAndRestoreRecovers(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{Netns: true})
	p := &sshx.Pool{Dialer: &sshx.Dialer{HostKeys: &sshx.MemoryHostKeys{}, KeepaliveInterval: 200 * time.Millisecond}}
	t.Cleanup(func() { p.Close() })
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, tg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := tg
	fresh.ConnectTimeout = 300 * time.Millisecond
	_, err := newDialer().Dial(ctx, fresh)
	if !errors.Is(err, sshx.ErrTimeout) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("dial cut node: %v, want ErrTimeout", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := poolEcho(rctx, p, tg); !errors.Is(err, sshx.ErrTimeout) {
		t.Fatalf("run on cut node: %v, want ErrTimeout", err)
	}
	if err := n.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitErr(t, 15*time.Second, "run after restore", func() error {
		_, err := poolEcho(ctxT(t, 2*time.Second), p, tg)
		return err
	})
}
