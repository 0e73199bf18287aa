package sshx_test

import (
	"context"
	"errors"
	"fmt"
	"net"

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

// Many clusters on one node each have their own connection, and each is
// dialed at once. sshd drops new connections beyond MaxStartups while
// others are still unauthenticated, which would read as a node refusing
// us: the pool has at most MaxDialsPerHost dials to one host under way,
// and the rest wait their turn. The "node" here accepts, never answers,
// and drops each connection after a while.
func TestPoolBoundsDialsPerHost(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	open, most, total := 0, 0, 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open, total = open+1, total+1
			most = max(most, open)
			mu.Unlock()
			go func() {
				// A slow node: it holds the connection a while, unanswered,
				// then drops it (counted first, so a dial that follows the
				// drop never overlaps it).
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				open--
				mu.Unlock()
				c.Close()
			}()
		}
	}()
	p := newPool(t)
	const bound, dials = 2, 6
	p.MaxDialsPerHost = bound
	addr := ln.Addr().(*net.TCPAddr)
	var wg sync.WaitGroup
	for i := range dials {
		wg.Go(func() {
			// Different users: different pooled connections to one host.
			tg := sshx.Target{Host: addr.IP.String(), Port: addr.Port, User: fmt.Sprintf("u%d", i),
				Password: "x", ConnectTimeout: time.Minute}
			if _, err := p.Get(ctxT(t, time.Minute), tg); err == nil {
				t.Errorf("dial %d to a node that never answers succeeded", i)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if total != dials || most > bound {
		t.Fatalf("%d dials reached the node, at most %d at once; want all %d, at most %d at once",
			total, most, dials, bound)
	}
}
