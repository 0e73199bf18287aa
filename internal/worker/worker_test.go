package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
)

func startWorker(t *testing.T, ns *natstest.Server, h worker.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, ns.JS, worker.Config{Kind: rh.KindOnDemand, Durable: "test", MaxDeliver: 3, RetryBase: time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// putRecord stores a record as the registry would, so the loop's staleness check sees it.
func putRecord(t *testing.T, ns *natstest.Server, c *rh.Cluster) {
	t.Helper()
	kv, _ := ns.JS.KeyValue(context.Background(), events.BucketClusters)
	b, _ := json.Marshal(c)
	if _, err := kv.Put(context.Background(), events.ClusterKey(c.Name), b); err != nil {
		t.Fatal(err)
	}
}

func cluster(name string, gen, incarnation int64) *rh.Cluster {
	spec := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}
	spec.Normalize()
	return &rh.Cluster{Name: name, Spec: spec, Generation: gen, Incarnation: incarnation}
}

func publish(t *testing.T, ns *natstest.Server, op string, c *rh.Cluster) {
	t.Helper()
	env, err := events.NewIntent("test", op, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Publish(context.Background(), ns.JS, events.IntentSubject(op, c.Spec.Kind), env); err != nil {
		t.Fatal(err)
	}
}

// lastReport waits for a state report on cluster matching ok.
func lastReport(t *testing.T, ns *natstest.Server, name string, ok func(*events.StateReport) bool) *events.StateReport {
	t.Helper()
	st, _ := ns.JS.Stream(context.Background(), events.StreamState)
	var found *events.StateReport
	testkit.Eventually(t, 10*time.Second, "a matching report for "+name, func() bool {
		m, err := st.GetLastMsgForSubject(context.Background(), events.StateSubject(rh.KindOnDemand, name))
		if err != nil {
			return false
		}
		_, data, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		r := data.(*events.StateReport)
		found = r
		return ok(r)
	})
	return found
}

func TestTeardownCancelsARunningCreate(t *testing.T) {
	ns := natstest.Start(t)
	started := make(chan struct{})
	var createCancelled atomic.Bool
	startWorker(t, ns, func(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
		switch op {
		case events.OpCreate:
			close(started)
			<-ctx.Done()
			createCancelled.Store(errors.Is(context.Cause(ctx), worker.ErrSuperseded))
			return ctx.Err()
		case events.OpTeardown:
			return r.Report(ctx, rh.PhaseTerminated, "released", nil, nil)
		}
		return nil
	})
	c := cluster("race", 1, 1)
	putRecord(t, ns, c)
	publish(t, ns, events.OpCreate, c)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("create never started")
	}
	c.Generation, c.Incarnation = 2, 2
	putRecord(t, ns, c)
	publish(t, ns, events.OpTeardown, c)
	r := lastReport(t, ns, "race", func(r *events.StateReport) bool { return r.Phase == rh.PhaseTerminated })
	if r.Generation != 2 || !createCancelled.Load() {
		t.Fatalf("teardown report gen %d, create cancelled as superseded: %v", r.Generation, createCancelled.Load())
	}
}

func TestStaleAndMalformedEventsDoNoWork(t *testing.T) {
	ns := natstest.Start(t)
	var calls atomic.Int32
	startWorker(t, ns, func(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
		calls.Add(1)
		return r.Report(ctx, rh.PhaseUp, "up", nil, nil)
	})
	// A create of generation 1 for a cluster already at incarnation 3 is stale;
	// a create for a deleted cluster too.
	putRecord(t, ns, cluster("old", 3, 3))
	publish(t, ns, events.OpCreate, cluster("old", 1, 1))
	publish(t, ns, events.OpCreate, cluster("gone", 1, 1))
	// A malformed event goes to the dead-letter stream with the reason.
	if _, err := ns.JS.Publish(context.Background(), "rh.cluster.create.ondemand", []byte(`{"specversion":"1.0","id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	// A current one is handled: its report proves the earlier ones were consumed.
	putRecord(t, ns, cluster("fresh", 1, 1))
	publish(t, ns, events.OpCreate, cluster("fresh", 1, 1))
	lastReport(t, ns, "fresh", func(r *events.StateReport) bool { return r.Phase == rh.PhaseUp })
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1 (stale events must do no work)", n)
	}
	dlq, _ := ns.JS.Stream(context.Background(), events.StreamDLQ)
	var m *jetstream.RawStreamMsg
	testkit.Poll(10*time.Second, func() bool {
		m, _ = dlq.GetLastMsgForSubject(context.Background(), "rh.dlq.RH_EVENTS.test")
		return m != nil
	})
	if m == nil || !strings.Contains(m.Header.Get(events.HeaderDLQReason), "malformed") {
		t.Fatalf("malformed event not dead-lettered with a reason: %v", m)
	}
}

func TestPermanentErrorFailsTheClusterWithoutRetry(t *testing.T) {
	ns := natstest.Start(t)
	var calls atomic.Int32
	startWorker(t, ns, func(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
		calls.Add(1)
		return worker.Permanent(errors.New("quota exceeded for A100 in us-east-1"))
	})
	c := cluster("quota", 1, 1)
	putRecord(t, ns, c)
	publish(t, ns, events.OpCreate, c)
	r := lastReport(t, ns, "quota", func(r *events.StateReport) bool { return r.Phase == rh.PhaseFailed })
	if r.Message != "quota exceeded for A100 in us-east-1" {
		t.Fatalf("failure message %q", r.Message)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a permanent failure was tried %d times", n)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	ns := natstest.Start(t)
	var calls atomic.Int32
	startWorker(t, ns, func(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
		if calls.Add(1) < 3 {
			return errors.New("503 from the API server")
		}
		return r.Report(ctx, rh.PhaseUp, "up after retries", nil, nil)
	})
	c := cluster("flaky", 1, 1)
	putRecord(t, ns, c)
	publish(t, ns, events.OpCreate, c)
	lastReport(t, ns, "flaky", func(r *events.StateReport) bool { return r.Phase == rh.PhaseUp })
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
}
