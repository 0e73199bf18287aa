package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
)

// fakeCloud is a kind whose cloud calls keep a record and a key, the way a
// real worker's do, and whose creates of "slow" wait to be interrupted.
type fakeCloud struct {
	host        *worker.Host[testRecord]
	interrupted chan error // the cancel cause of an interrupted create
	started     chan struct{}
	reg         *prometheus.Registry
}

type fakeCall struct {
	*fakeCloud
	in *events.ClusterIntent
	r  *worker.Reporter
}

func (f *fakeCloud) begin(_ context.Context, _ string, in *events.ClusterIntent, r *worker.Reporter) (worker.Ops, error) {
	if in.Spec.OnDemand == nil {
		return nil, worker.Permanent(errors.New("no ondemand section"))
	}
	return &fakeCall{fakeCloud: f, in: in, r: r}, nil
}

func (c *fakeCall) Create(ctx context.Context) error {
	if c.in.Cluster == "held" {
		// A long cloud call with a record saved first, as a launch has.
		rec, rev, err := c.host.Records.Acquire(ctx, c.in.Cluster)
		if err != nil || rec != nil {
			return fmt.Errorf("acquire: %+v, %w", rec, err)
		}
		if _, err := c.host.Records.Save(ctx, c.in.Cluster, testRecord{Generation: c.in.Generation, State: "launching"}, rev); err != nil {
			return err
		}
		close(c.started)
		<-ctx.Done()
		c.interrupted <- context.Cause(ctx)
		return ctx.Err()
	}
	if c.in.Cluster == "slow" {
		close(c.started)
		<-ctx.Done()
		c.interrupted <- context.Cause(ctx)
		return ctx.Err()
	}
	if _, err := c.host.Records.Save(ctx, c.in.Cluster, testRecord{Generation: c.in.Generation, State: "up"}, 0); err != nil {
		return err
	}
	if err := c.host.Secrets.Put(ctx, c.in.Cluster, rh.Secrets{SSHPrivateKey: "key"}); err != nil {
		return err
	}
	return c.r.Report(ctx, rh.PhaseUp, "up", nil, nil)
}

func (c *fakeCall) Teardown(ctx context.Context) error {
	if err := c.host.Forget(ctx, c.in.Cluster); err != nil {
		return err
	}
	return c.r.Report(ctx, rh.PhaseTerminated, "gone", nil, nil)
}

func (c *fakeCall) Update(context.Context) error  { return nil }
func (c *fakeCall) Refresh(context.Context) error { return nil }

func startHost(t *testing.T, ns *natstest.Server) *fakeCloud {
	t.Helper()
	ctx := context.Background()
	// Buckets are serve's to make; the host only binds.
	if _, err := ns.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "rh_test_host"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := worker.Bind[testRecord](ctx, ns.NC, worker.HostConfig{
		Config: worker.Config{Kind: rh.KindOnDemand, Durable: "test", RetryBase: time.Millisecond, Registry: reg,
			Heartbeat: 200 * time.Millisecond},
		Bucket: "rh_test_host", KeyPrefix: "rec.",
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCloud{host: h, interrupted: make(chan error, 1), started: make(chan struct{}), reg: reg}
	if err := h.Start(ctx, f.begin, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return f
}

// TestHostRunsOpsAndForgets: each op reaches its method; a teardown's Forget
// drops the kind's record and the cluster's key.
func TestHostRunsOpsAndForgets(t *testing.T) {
	ns := natstest.Start(t)
	f := startHost(t, ns)
	ctx := context.Background()
	c := cluster("a", 1, 1)
	putRecord(t, ns, c)
	publish(t, ns, events.OpCreate, c)
	lastReport(t, ns, "a", func(r *events.StateReport) bool { return r.Phase == rh.PhaseUp })
	if rec, _, err := f.host.Records.Load(ctx, "a"); err != nil || rec == nil || rec.State != "up" {
		t.Fatalf("record after create: %+v, %v", rec, err)
	}

	c.Generation, c.Incarnation = 2, 2
	putRecord(t, ns, c)
	publish(t, ns, events.OpTeardown, c)
	lastReport(t, ns, "a", func(r *events.StateReport) bool { return r.Phase == rh.PhaseTerminated })
	if rec, _, err := f.host.Records.Load(ctx, "a"); err != nil || rec != nil {
		t.Fatalf("record after teardown: %+v, %v", rec, err)
	}
	if sec, _, err := f.host.Secrets.Get(ctx, "a"); err != nil || sec != nil {
		t.Fatalf("key after teardown: %+v, %v", sec, err)
	}
	if phase, err := f.host.RecordedPhase(ctx, "never-created"); err != nil || phase != rh.PhaseTerminated {
		t.Fatalf("phase of a cluster without a record: %s, %v", phase, err)
	}
}

// TestHostStopInterruptsHandlers: Stop does not wait for a slow cloud call;
// the handler sees why it was cancelled.
func TestHostStopInterruptsHandlers(t *testing.T) {
	ns := natstest.Start(t)
	f := startHost(t, ns)
	c := cluster("slow", 1, 1)
	putRecord(t, ns, c)
	publish(t, ns, events.OpCreate, c)
	select {
	case <-f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("create never started")
	}
	f.host.Stop()
	if cause := <-f.interrupted; !errors.Is(cause, worker.ErrStopping) {
		t.Fatalf("cancel cause %v, want ErrStopping", cause)
	}
}

// TestHostStopsAnOperationAnotherWorkerAdopted: while a create runs, its
// record names this process and its heartbeat moves the record on; when
// another worker adopts the record (as it would from an owner that stalled
// past the stale period), the create is cancelled with ErrTakenOver and its
// event left to the adopter: neither acked nor retried.
func TestHostStopsAnOperationAnotherWorkerAdopted(t *testing.T) {
	ns := natstest.Start(t)
	f := startHost(t, ns)
	ctx := context.Background()
	c := cluster("held", 1, 1)
	putRecord(t, ns, c)
	publish(t, ns, events.OpCreate, c)
	select {
	case <-f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("create never started")
	}
	kv, err := ns.JS.KeyValue(ctx, "rh_test_host")
	if err != nil {
		t.Fatal(err)
	}
	first, err := kv.Get(ctx, "rec.held")
	if err != nil {
		t.Fatal(err)
	}
	var rec testRecord
	if err := json.Unmarshal(first.Value(), &rec); err != nil || rec.Owner == "" {
		t.Fatalf("record of a running create: %s, %v; want an owner", first.Value(), err)
	}
	testkit.WaitErr(t, 10*time.Second, "a heartbeat", func() error {
		e, err := kv.Get(ctx, "rec.held")
		if err != nil {
			return err
		}
		if e.Revision() == first.Revision() {
			return errors.New("record not rewritten yet")
		}
		return nil
	})

	rec.Owner = "test/adopter"
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, "rec.held", b); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-f.interrupted:
		if !errors.Is(cause, worker.ErrTakenOver) {
			t.Fatalf("cancel cause %v, want ErrTakenOver", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the displaced create kept running")
	}
	testkit.Eventually(t, 10*time.Second, "the event counted as taken over", func() bool {
		return outcomes(t, f.reg, "taken_over") == 1
	})
	if e, err := kv.Get(ctx, "rec.held"); err != nil || !json.Valid(e.Value()) {
		t.Fatalf("record after the takeover: %v", err)
	} else if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Owner != "test/adopter" {
		t.Fatalf("the displaced worker wrote over the adopter: %s", e.Value())
	}
}

// outcomes is rh_worker_events_total for an outcome, over event types.
func outcomes(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "rh_worker_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
