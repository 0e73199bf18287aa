// Package workertest is what the tests of every cloud worker share: a NATS
// server with the registry and a client on it, waits on a cluster's record,
// and looks into the secret store and the streams.
package workertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/secrets"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
)

// WaitTimeout bounds every wait on a cluster's record.
const WaitTimeout = 20 * time.Second

// FastLoop tunes a worker's event loop for tests: retries after
// milliseconds. The lease and the heartbeats keep their defaults, so the
// takeover tests show that the defaults replace a dead worker promptly.
var FastLoop = worker.Config{RetryBase: 20 * time.Millisecond}

// Bus is a NATS server running the registry, with a client: what a worker
// under test consumes from and reports to.
type Bus struct {
	T      testing.TB
	NS     *natstest.Server
	Client *client.Client
}

// Start starts a NATS server and the registry, both stopped when the test
// ends.
func Start(t testing.TB) *Bus {
	t.Helper()
	ns := natstest.Start(t)
	reg, err := registry.Start(context.Background(), ns.NC, registry.Config{ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	cl, err := client.New(ns.NC, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &Bus{T: t, NS: ns, Client: cl}
}

// Simulator is a cloud API simulator (internal/skysim, internal/sagemakersim).
type Simulator interface {
	http.Handler
	// Close ends the simulator's work, releasing requests that wait on it.
	Close()
}

// Serve serves sim over HTTP on a random loopback port until the test ends
// and returns its URL. The simulator is closed before the server, so
// long-polling requests return instead of holding the server's Close.
func Serve(t testing.TB, sim Simulator) string {
	ts := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		ts.Close()
	})
	return ts.URL
}

// StopAtCleanup makes stop run once, whether the test calls the returned
// func (to kill a worker mid-work) or not (then at cleanup).
func StopAtCleanup(t testing.TB, stop func()) func() {
	var once sync.Once
	f := func() { once.Do(stop) }
	t.Cleanup(f)
	return f
}

// Conn is a new connection to the bus's server, closed when the test ends:
// a worker on a connection of its own can be killed without the others.
func (b *Bus) Conn() *nats.Conn {
	b.T.Helper()
	nc, err := nats.Connect(b.NS.URL, nats.Timeout(natstest.ConnectTimeout))
	if err != nil {
		b.T.Fatal(err)
	}
	b.T.Cleanup(nc.Close)
	return nc
}

// Kill ends a worker as kill -9 looks from the bus: its connection drops
// first, so it neither naks its events nor renews a lease or heartbeat
// again; then stop ends its goroutines, whose writes go nowhere.
func Kill(nc *nats.Conn, stop func()) {
	nc.Close()
	stop()
}

// Create asks the registry for a cluster.
func (b *Bus) Create(name string, spec rh.Spec) {
	b.T.Helper()
	if _, err := b.Client.Create(context.Background(), name, spec, nil); err != nil {
		b.T.Fatal(err)
	}
}

// WaitFor waits until the cluster's record satisfies ok and returns it.
func (b *Bus) WaitFor(name, what string, ok func(*rh.Cluster) bool) *rh.Cluster {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	c, err := b.Client.WaitFor(ctx, name, ok)
	if err != nil {
		b.T.Fatalf("waiting for %s: %v (last: %+v)", what, err, c)
	}
	return c
}

// WaitPhase waits until the cluster is in phase p.
func (b *Bus) WaitPhase(name string, p rh.Phase) *rh.Cluster {
	b.T.Helper()
	return b.WaitFor(name, string(p), func(c *rh.Cluster) bool { return c.Status.Phase == p })
}

// WaitSettled waits for Up or a final phase and checks it is want.
func (b *Bus) WaitSettled(name string, want rh.Phase) *rh.Cluster {
	b.T.Helper()
	c := b.WaitFor(name, string(want), func(c *rh.Cluster) bool {
		return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final()
	})
	if c.Status.Phase != want {
		b.T.Fatalf("%s: phase %s (%q), want %s", name, c.Status.Phase, c.Status.Message, want)
	}
	return c
}

// Secrets returns what rh_secrets holds for a cluster (nil: nothing).
func (b *Bus) Secrets(name string) *rh.Secrets {
	b.T.Helper()
	store, err := secrets.Open(context.Background(), b.NS.JS)
	if err != nil {
		b.T.Fatal(err)
	}
	sec, _, err := store.Get(context.Background(), name)
	if err != nil {
		b.T.Fatal(err)
	}
	return sec
}

// StreamHolds reports whether any message of stream contains s.
func (b *Bus) StreamHolds(stream, s string) bool {
	b.T.Helper()
	ctx := context.Background()
	st, err := b.NS.JS.Stream(ctx, stream)
	if err != nil {
		b.T.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		b.T.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err == nil && bytes.Contains(m.Data, []byte(s)) {
			return true
		}
	}
	return false
}

// CreateAndWait creates the clusters at once and waits until all are Up,
// watching the records bucket once rather than per cluster (benchmarks).
func (b *Bus) CreateAndWait(tb testing.TB, spec rh.Spec, names []string) {
	tb.Helper()
	// A minute, and more for many clusters on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(len(names))*100*time.Millisecond)
	defer cancel()
	kv, err := b.NS.JS.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	want := map[string]bool{}
	for _, n := range names {
		want[events.ClusterKey(n)] = true
	}
	errs := make(chan error, len(names))
	for _, n := range names {
		go func() {
			_, err := b.Client.Create(ctx, n, spec, nil)
			errs <- err
		}()
	}
	for range names {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	for len(want) > 0 {
		select {
		case <-ctx.Done():
			tb.Fatalf("%d clusters not Up in time", len(want))
		case en := <-w.Updates():
			if en == nil || !want[en.Key()] {
				continue
			}
			var c rh.Cluster
			if json.Unmarshal(en.Value(), &c) != nil {
				continue
			}
			switch {
			case c.Status.Phase == rh.PhaseUp:
				delete(want, en.Key())
			case c.Status.Phase.Final():
				tb.Fatalf("%s: %s %s", c.Name, c.Status.Phase, c.Status.Message)
			}
		}
	}
}

// KeyLine is a line from the middle of a PEM private key: text that appears
// wherever the key leaked, and nowhere else.
func KeyLine(pemKey string) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(pemKey)), []byte("\n"))
	if len(lines) < 2 {
		return pemKey
	}
	return string(lines[1])
}

// KeyNowhereElse fails the test when the private key of sec shows in the
// cluster's record or in any event: rh_secrets alone may hold it.
func (b *Bus) KeyNowhereElse(c *rh.Cluster, sec *rh.Secrets) {
	b.T.Helper()
	line := KeyLine(sec.SSHPrivateKey)
	if rec, _ := json.Marshal(c); bytes.Contains(rec, []byte(line)) {
		b.T.Fatal("the record holds the private key")
	}
	for _, st := range []string{events.StreamEvents, events.StreamState} {
		if b.StreamHolds(st, line) {
			b.T.Fatalf("stream %s holds the private key", st)
		}
	}
}

// BenchCreateToUp runs the create-to-Up benchmarks every worker has: one
// cluster at a time, and `together` clusters at once. start returns a bus
// with a worker running on it; spec is the cluster each create asks for.
func BenchCreateToUp(b *testing.B, together int, spec rh.Spec, start func(b *testing.B) *Bus) {
	b.Run("one-at-a-time", func(b *testing.B) {
		bus := start(b)
		b.ResetTimer()
		for i := range b.N {
			bus.CreateAndWait(b, spec, []string{fmt.Sprintf("one-%d", i)})
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/cluster")
	})
	b.Run(fmt.Sprintf("%d-together", together), func(b *testing.B) {
		bus := start(b)
		b.ResetTimer()
		for i := range b.N {
			names := make([]string, together)
			for j := range names {
				names[j] = fmt.Sprintf("many-%d-%d", i, j)
			}
			bus.CreateAndWait(b, spec, names)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*together), "ns/cluster")
	})
}

// TeardownOvertakes tears down a cluster that is still being created and
// checks it ends Terminated within d: the teardown cancelled the create
// instead of waiting for it.
func (b *Bus) TeardownOvertakes(name string, d time.Duration) {
	b.T.Helper()
	if _, err := b.Client.Teardown(context.Background(), name); err != nil {
		b.T.Fatal(err)
	}
	start := time.Now()
	c := b.WaitFor(name, "Terminated", func(c *rh.Cluster) bool { return c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseTerminated {
		b.T.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
	if took := time.Since(start); took > d {
		b.T.Fatalf("teardown took %s: it waited for the create instead of cancelling it", took)
	}
}

// Forgotten fails the test unless the cluster's key is gone from rh_secrets
// and its record can be deleted: what a teardown must leave.
func (b *Bus) Forgotten(name string) {
	b.T.Helper()
	if b.Secrets(name) != nil {
		b.T.Fatalf("the key of %s is still stored", name)
	}
	if err := b.Client.Delete(context.Background(), name, false); err != nil {
		b.T.Fatal(err)
	}
}
