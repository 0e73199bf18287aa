package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natsembed"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
)

type env struct {
	ns  *natstest.Server
	reg *registry.Service
	cl  *client.Client
}

func start(t *testing.T, cfg registry.Config) *env {
	t.Helper()
	ns := natstest.Start(t)
	ctx := context.Background()
	reg, err := registry.Start(ctx, ns.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	return &env{ns: ns, reg: reg, cl: clientFor(t, ns)}
}

func clientFor(t testing.TB, ns *natstest.Server) *client.Client {
	t.Helper()
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func byo(ips ...string) rh.Spec {
	return rh.Spec{BYO: &rh.BYOSpec{IPs: ips, SSHUser: "ml"}}
}

// streamMsgs counts the messages on subject in stream.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func TestCreateStoresOneRecordAndPublishesOneEvent(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	c, err := e.cl.Create(ctx, "gpu-a", byo("10.0.0.1", "10.0.0.2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Phase != rh.PhasePending || c.Generation != 1 || c.Spec.Kind != rh.KindBYO {
		t.Fatalf("created cluster = phase %s gen %d kind %s; want Pending, 1, byo", c.Status.Phase, c.Generation, c.Spec.Kind)
	}
	if got := streamMsgs(t, e.ns.JS, events.StreamEvents, "rh.cluster.create.byo"); got != 1 {
		t.Fatalf("create events = %d, want 1", got)
	}
	cs, err := e.cl.List(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "gpu-a" {
		t.Fatalf("List = %v, %v; want just gpu-a", cs, err)
	}

	// The same create again is a conflict and changes nothing.
	kv, _ := e.ns.JS.KeyValue(ctx, events.BucketClusters)
	before, _ := kv.Get(ctx, events.ClusterKey("gpu-a"))
	_, err = e.cl.Create(ctx, "gpu-a", byo("10.9.9.9"), &rh.Secrets{Password: "other"})
	if !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("second create: err = %v, want conflict", err)
	}
	after, _ := kv.Get(ctx, events.ClusterKey("gpu-a"))
	if after.Revision() != before.Revision() {
		t.Fatalf("record revision moved from %d to %d on a refused create", before.Revision(), after.Revision())
	}
	if got := streamMsgs(t, e.ns.JS, events.StreamEvents, "rh.cluster.create.byo"); got != 1 {
		t.Fatalf("create events after conflict = %d, want 1", got)
	}
	sec, _ := e.ns.JS.KeyValue(ctx, events.BucketSecrets)
	if _, err := sec.Get(ctx, events.ClusterKey("gpu-a")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("refused create stored a secret: %v", err)
	}
}

func TestSecretsStayOutOfRecordsAndEvents(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	const pw = "hunter2-very-secret"
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nS3CR3TKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"
	c, err := e.cl.Create(ctx, "sec", byo("10.0.0.1"), &rh.Secrets{Password: pw, SSHPrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Spec.BYO.HasKey || !c.Spec.BYO.HasPassword {
		t.Fatalf("record does not note the stored secrets: %+v", c.Spec.BYO)
	}
	b, _ := json.Marshal(c)
	for _, s := range []string{pw, "S3CR3TKEYMATERIAL"} {
		if contains(b, s) {
			t.Fatalf("record contains a secret")
		}
	}
	st, _ := e.ns.JS.Stream(ctx, events.StreamEvents)
	msg, err := st.GetLastMsgForSubject(ctx, "rh.cluster.create.byo")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{pw, "S3CR3TKEYMATERIAL"} {
		if contains(msg.Data, s) {
			t.Fatalf("create event contains a secret")
		}
	}
	sec, _ := e.ns.JS.KeyValue(ctx, events.BucketSecrets)
	got, err := sec.Get(ctx, events.ClusterKey("sec"))
	if err != nil {
		t.Fatal(err)
	}
	var s rh.Secrets
	if err := json.Unmarshal(got.Value(), &s); err != nil || s.Password != pw || s.SSHPrivateKey != key {
		t.Fatalf("secret store does not hold the secrets: %v", err)
	}
	if fmt.Sprint(s) != "<redacted>" {
		t.Fatalf("secrets print as %q", fmt.Sprint(s))
	}
}

func contains(b []byte, s string) bool {
	return len(s) > 0 && string(b) != "" && indexOf(string(b), s) >= 0
}

func indexOf(h, n string) int {
	for i := 0; i+len(n) <= len(h); i++ {
		if h[i:i+len(n)] == n {
			return i
		}
	}
	return -1
}

// report publishes a state report the way a worker does.
func report(t *testing.T, e *env, cluster string, gen int64, phase rh.Phase, msg string, at time.Time) {
	t.Helper()
	rep := events.StateReport{Cluster: cluster, Kind: rh.KindBYO, Generation: gen, Phase: phase, Message: msg, Worker: "test-worker", ObservedAt: at}
	env, err := events.NewState("test", rep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Publish(context.Background(), e.ns.JS, events.StateSubject(rh.KindBYO, cluster), env); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, e *env, name string, what string, ok func(*rh.Cluster) bool) *rh.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.cl.WaitFor(ctx, name, ok)
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %+v)", what, err, c)
	}
	return c
}

func TestStateReportsApplyOnceAndNeverBackwards(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	if _, err := e.cl.Create(ctx, "rep", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC()
	report(t, e, "rep", 1, rh.PhaseProvisioning, "connecting", t0)
	report(t, e, "rep", 1, rh.PhaseUp, "1/1 nodes up", t0.Add(time.Second))
	c := waitFor(t, e, "rep", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp })
	rev := c.UpdatedAt

	// Duplicate, out-of-order (an older Provisioning) and older same-rank reports change nothing.
	report(t, e, "rep", 1, rh.PhaseUp, "1/1 nodes up", t0.Add(time.Second))
	report(t, e, "rep", 1, rh.PhaseProvisioning, "late", t0.Add(500*time.Millisecond))
	report(t, e, "rep", 1, rh.PhaseDegraded, "older than Up", t0.Add(200*time.Millisecond))
	// A marker report proves the earlier ones were consumed before we look.
	report(t, e, "rep", 1, rh.PhaseDegraded, "node 10.0.0.1 unreachable", t0.Add(2*time.Second))
	c = waitFor(t, e, "rep", "Degraded", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseDegraded })
	if c.Status.Message != "node 10.0.0.1 unreachable" || !c.UpdatedAt.After(rev) {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
	want := []rh.Phase{rh.PhasePending, rh.PhaseProvisioning, rh.PhaseUp, rh.PhaseDegraded}
	if got := phasesOf(c.History); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history = %v, want %v (duplicates or stale reports leaked in)", got, want)
	}

	// After a teardown, a late Up from the old incarnation is stale.
	c, err := e.cl.Teardown(ctx, "rep")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Phase != rh.PhaseTearingDown || c.Generation != 2 {
		t.Fatalf("teardown: phase %s gen %d", c.Status.Phase, c.Generation)
	}
	report(t, e, "rep", 1, rh.PhaseUp, "stale", time.Now().UTC())
	report(t, e, "rep", 2, rh.PhaseTerminated, "connections closed", time.Now().UTC().Add(time.Second))
	c = waitFor(t, e, "rep", "Terminated", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseTerminated })
	for _, tr := range c.History {
		if tr.Message == "stale" {
			t.Fatalf("a stale report was applied: %+v", c.History)
		}
	}
	if c.Status.ObservedGeneration != 2 {
		t.Fatalf("observed generation = %d, want 2", c.Status.ObservedGeneration)
	}
	hist, err := e.cl.History(ctx, "rep")
	if err != nil {
		t.Fatal(err)
	}
	want = []rh.Phase{rh.PhasePending, rh.PhaseProvisioning, rh.PhaseUp, rh.PhaseDegraded, rh.PhaseTearingDown, rh.PhaseTerminated}
	if got := phasesOf(hist); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events history = %v, want %v", got, want)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].At.Before(hist[i-1].At) || hist[i].From != hist[i-1].To {
			t.Fatalf("history out of order at %d: %+v", i, hist)
		}
	}
	if err := e.cl.Delete(ctx, "rep", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Get(ctx, "rep"); !errors.Is(err, rh.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func phasesOf(h []rh.Transition) []rh.Phase {
	var out []rh.Phase
	for _, t := range h {
		if len(out) == 0 || out[len(out)-1] != t.To {
			out = append(out, t.To)
		}
	}
	return out
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	spec := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "A100:4"}}
	if _, err := e.cl.Create(ctx, "busy", spec, nil); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// Distinct values, so every call is a real change.
			if _, err := e.cl.SetAutostop(ctx, "busy", 10+i); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, err := e.cl.Get(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if c.Generation != 1+n {
		t.Fatalf("generation = %d after %d concurrent updates, want %d", c.Generation, n, 1+n)
	}
	changes := 0
	for _, tr := range c.History {
		if tr.Source == registry.Source && tr.Message != "created" {
			changes++
		}
	}
	if changes != n {
		t.Fatalf("history records %d autostop changes, want %d", changes, n)
	}
}

func TestDeleteRefusesLiveClusters(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	if _, err := e.cl.Create(ctx, "live", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.Delete(ctx, "live", false); !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("delete of a Pending cluster: %v, want conflict", err)
	}
	if _, err := e.cl.Up(ctx, "live"); err != nil {
		t.Fatalf("up of a Pending cluster should be a no-op: %v", err)
	}
	c, _ := e.cl.Get(ctx, "live")
	if c.Generation != 1 {
		t.Fatalf("up of a Pending cluster bumped the generation to %d", c.Generation)
	}
	if _, err := e.cl.Up(ctx, "missing"); !errors.Is(err, rh.ErrNotFound) {
		t.Fatalf("up of a missing cluster: %v", err)
	}
	if err := e.cl.Delete(ctx, "live", true); err != nil {
		t.Fatalf("forced delete: %v", err)
	}
}

func TestReconcileRepublishesUnobservedIntentsAndRefreshesLiveClusters(t *testing.T) {
	e := start(t, registry.Config{ReconcileEvery: time.Hour, IntentRetryAfter: time.Nanosecond})
	ctx := context.Background()
	if _, err := e.cl.Create(ctx, "rec", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	// Lose the published create, as if the registry crashed before publishing
	// (a new stream: a purge would keep the id in the duplicate window).
	if err := e.ns.JS.DeleteStream(ctx, events.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if err := events.Setup(ctx, e.ns.JS, events.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	e.reg.Reconcile(ctx)
	if got := streamMsgs(t, e.ns.JS, events.StreamEvents, "rh.cluster.create.byo"); got != 1 {
		t.Fatalf("create events after reconcile = %d, want 1", got)
	}
	report(t, e, "rec", 1, rh.PhaseUp, "up", time.Now().UTC())
	waitFor(t, e, "rec", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp })
	e.reg.Reconcile(ctx)
	if got := streamMsgs(t, e.ns.JS, events.StreamEvents, "rh.cluster.refresh.byo"); got != 1 {
		t.Fatalf("refresh events after one reconcile of an Up cluster = %d, want 1", got)
	}
}

// A create whose intent could not be published (the events stream did not
// answer) is published within seconds once the stream is back, not at the
// next reconcile pass: the cluster does not sit Pending for its period.
func TestAnIntentThatFailedToPublishIsRetriedPromptly(t *testing.T) {
	e := start(t, registry.Config{ReconcileEvery: time.Hour})
	ctx := context.Background()
	if err := e.ns.JS.DeleteStream(ctx, events.StreamEvents); err != nil {
		t.Fatal(err)
	}
	c, err := e.cl.Create(ctx, "retried", byo("10.0.0.1"), nil)
	if err != nil {
		t.Fatalf("create while the events stream is gone: %v", err)
	}
	if c.Status.Phase != rh.PhasePending {
		t.Fatalf("phase = %s, want Pending", c.Status.Phase)
	}
	if err := events.Setup(ctx, e.ns.JS, events.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitErr(t, 30*time.Second, "the create intent in the stream", func() error {
		if got := streamMsgs(t, e.ns.JS, events.StreamEvents, "rh.cluster.create.byo"); got != 1 {
			return fmt.Errorf("%d create events", got)
		}
		return nil
	})
}

func TestMalformedReportIsDeadLetteredAndServiceKeepsRunning(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	if _, err := e.ns.JS.Publish(ctx, "rh.cluster.state.byo.junk", []byte(`{"specversion":"1.0","nonsense":true}`)); err != nil {
		t.Fatal(err)
	}
	dlq, _ := e.ns.JS.Stream(ctx, events.StreamDLQ)
	var msg *jetstream.RawStreamMsg
	testkit.Poll(10*time.Second, func() bool {
		msg, _ = dlq.GetLastMsgForSubject(ctx, "rh.dlq.RH_STATE.registry")
		return msg != nil
	})
	if msg == nil {
		t.Fatal("malformed report never reached the dead-letter stream")
	}
	if r := msg.Header.Get(events.HeaderDLQReason); indexOf(r, "nonsense") < 0 {
		t.Fatalf("dead-letter reason %q does not name the bad field", r)
	}
	if _, err := e.cl.Create(ctx, "still-works", byo("10.0.0.1"), nil); err != nil {
		t.Fatalf("registry stopped answering after a malformed report: %v", err)
	}
}

func TestWorkerFailureExhaustingDeliveriesFailsTheCluster(t *testing.T) {
	e := start(t, registry.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, e.ns.JS, worker.Config{Kind: rh.KindBYO, Durable: "byo-test", MaxDeliver: 2, RetryBase: time.Millisecond},
		func(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
			return errors.New("network is down")
		})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := e.cl.Create(ctx, "doomed", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	c := waitFor(t, e, "doomed", "Failed", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseFailed })
	if indexOf(c.Status.Message, "network is down") < 0 || indexOf(c.Status.Message, "2 attempts") < 0 {
		t.Fatalf("failure message %q does not say why", c.Status.Message)
	}
	dlq, _ := e.ns.JS.Stream(ctx, events.StreamDLQ)
	if _, err := dlq.GetLastMsgForSubject(ctx, "rh.dlq.RH_EVENTS.byo-test"); err != nil {
		t.Fatalf("exhausted event is not in the dead-letter stream: %v", err)
	}
}

// Services bind what serve set up and change none of it; on a NATS where
// nothing is set up they say so.
func TestRegistryOnlyBindsStreams(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	st, err := ns.JS.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxAge = 36 * time.Hour // the operator's choice
	if _, err := ns.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Start(ctx, ns.NC, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg.Stop()
	st, _ = ns.JS.Stream(ctx, events.StreamEvents)
	if got := st.CachedInfo().Config.MaxAge; got != 36*time.Hour {
		t.Fatalf("starting the registry changed RH_EVENTS' MaxAge to %s", got)
	}

	bare, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Shutdown()
	nc, err := nats.Connect(bare.ClientURL(), nats.Timeout(natstest.ConnectTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := registry.Start(ctx, nc, registry.Config{}); !errors.Is(err, events.ErrNotSetUp) || !strings.Contains(err.Error(), "RH_EVENTS") {
		t.Fatalf("registry on a NATS with nothing set up: %v", err)
	}
}

// TestReportsADeadRegistryPulledAreAppliedByItsReplacement: reports a
// registry had pulled when it died (delivered on the durable, never acked)
// reach its replacement after the short report lease, not a 30 s ack wait:
// the wait's deadline is well under that.
func TestReportsADeadRegistryPulledAreAppliedByItsReplacement(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	first, err := registry.Start(ctx, ns.NC, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ns: ns, reg: first, cl: clientFor(t, ns)}
	if _, err := e.cl.Create(ctx, "held", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	first.Stop()

	report(t, e, "held", 1, rh.PhaseUp, "1/1 nodes up", time.Now().UTC())
	// What the dead registry did: pull the report on its durable, and never
	// answer for it.
	cons, err := ns.JS.Consumer(ctx, events.StreamState, "registry")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 1 {
		t.Fatalf("pulled %d reports, want the one published", n)
	}

	second, err := registry.Start(ctx, ns.NC, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Stop)
	c := waitFor(t, e, "held", "the held report applied", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp })
	if c.Status.Message != "1/1 nodes up" {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
}
