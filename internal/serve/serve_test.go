package serve_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/serve"
)

type running struct {
	url    string
	creds  string // the local operator's
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServe(t *testing.T, o serve.Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	o.Ready = func(url, creds string) { ready <- [2]string{url, creds} }
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- serve.Run(ctx, o) }()
	select {
	case rc := <-ready:
		r.url, r.creds = rc[0], rc[1]
	case err := <-r.done:
		cancel()
		t.Fatalf("serve exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve not ready after 30s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("serve returned %v on a clean stop", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s")
		}
	})
}

func connect(t *testing.T, r *running) *client.Client {
	t.Helper()
	cl, err := client.Connect(context.Background(), client.Options{URL: r.url, Creds: r.creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestRecordsAndHistorySurviveARestart(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})
	cl := connect(t, r)
	ctx := context.Background()
	if _, err := cl.Create(ctx, "keep", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SetAutostop(ctx, "keep", 15); err != nil {
		t.Fatal(err)
	}
	before, _ := cl.History(ctx, "keep")
	cl.Close()
	r.stop(t)

	r2 := startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})
	cl2 := connect(t, r2)
	c, err := cl2.Get(ctx, "keep")
	if err != nil {
		t.Fatalf("record lost across restart: %v", err)
	}
	if c.Spec.Autostop() != 15 || c.Generation != 2 {
		t.Fatalf("record after restart: autostop %d gen %d", c.Spec.Autostop(), c.Generation)
	}
	after, err := cl2.History(ctx, "keep")
	if err != nil || len(after) != len(before) || len(after) != 2 {
		t.Fatalf("history after restart = %d entries (%v), before %d", len(after), err, len(before))
	}
}

func TestSecondServeOnTheSameDataDirFailsClearly(t *testing.T) {
	dir := t.TempDir()
	startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})
	err := serve.Run(context.Background(), serve.Options{DataDir: dir, Listen: "127.0.0.1:0", Services: []string{"registry"}})
	if !errors.Is(err, serve.ErrDataDirInUse) {
		t.Fatalf("second serve: %v, want ErrDataDirInUse", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("message %q does not name the dir and the way out", err)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	addr := freeAddr(t)
	r := startServe(t, serve.Options{DataDir: t.TempDir(), HTTPAddr: addr, Services: []string{"registry"}})
	cl := connect(t, r)
	if _, err := cl.Create(context.Background(), "m", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}, nil); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `rh_registry_events_published_total{event_type="dev.rh.cluster.create.v1",service="registry"} 1`) {
		t.Fatalf("/metrics = %d, missing the create counter:\n%s", code, body)
	}
}

func TestUnknownServiceIsRefused(t *testing.T) {
	err := serve.Run(context.Background(), serve.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Services: []string{"registry", "nope"}})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err = %v", err)
	}
}
