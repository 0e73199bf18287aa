package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/svc"
	"github.com/rhq/rh/services/registry"
)

func byo() rh.Spec { return rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"10.0.0.1"}, SSHUser: "ml"}} }

// TestCreateSurvivesARegistryThatDiedWithIt: the registry takes a create,
// stores it and dies before answering; for a while nothing answers; then a
// new registry runs. The SDK's create asks again with the same request id
// and gets the cluster its first attempt made: no "already exists", one
// record, one intent, and no wait for the whole request timeout (the
// create's deadline is well under it).
func TestCreateSurvivesARegistryThatDiedWithIt(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	// The registry that dies: it takes the request and never answers.
	taken := make(chan *nats.Msg, 1)
	dying, err := ns.NC.Subscribe(api.RegistrySubject(api.OpCreate), func(m *nats.Msg) {
		select {
		case taken <- m:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		c   *rh.Cluster
		err error
	}
	done := make(chan result, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		c, err := cl.Create(cctx, "survivor", byo(), nil)
		done <- result{c, err}
	}()
	m := <-taken
	_ = dying.Unsubscribe()

	// Its replacement starts; what the dead one had stored is there (the
	// test plays the dead registry's write through the new one, answer
	// dropped).
	reg, err := registry.Start(ctx, ns.NC, registry.Config{ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if _, err := ns.NC.Request(m.Subject, m.Data, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	r := <-done
	if r.err != nil {
		t.Fatalf("create after the registry died with it: %v", r.err)
	}
	if r.c.Name != "survivor" || r.c.Generation != 1 {
		t.Fatalf("answered %+v", r.c)
	}
	st, err := ns.JS.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	subj := events.IntentSubject(events.OpCreate, rh.KindBYO)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subj]; n != 1 {
		t.Fatalf("%d create intents, want 1", n)
	}
}

// TestCreateWaitsOutARegistryRestart: no registry answers when the create
// is sent; one starts a moment later and the create succeeds.
func TestCreateWaitsOutARegistryRestart(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing answers now: the first attempts meet no responders.
	done := make(chan error, 1)
	go func() {
		_, err := cl.Create(ctx, "patient", byo(), nil)
		done <- err
	}()
	reg, err := registry.Start(ctx, ns.NC, registry.Config{ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if err := <-done; err != nil {
		t.Fatalf("create across a registry start: %v", err)
	}
}

// TestDeleteSentAgainAfterItsAnswerWasLostIsDone: a delete whose answer
// never came is sent again; not finding the cluster then means the first
// attempt deleted it.
func TestDeleteSentAgainAfterItsAnswerWasLostIsDone(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Start(ctx, ns.NC, registry.Config{ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if _, err := cl.Define(ctx, "brief", byo(), nil); err != nil {
		t.Fatal(err)
	}
	reg.Stop()

	// A registry that deletes and dies before answering.
	taken := make(chan *nats.Msg, 1)
	dying, err := ns.NC.Subscribe(api.RegistrySubject(api.OpDelete), func(m *nats.Msg) {
		select {
		case taken <- m:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cl.Delete(ctx, "brief", true) }()
	m := <-taken
	_ = dying.Unsubscribe()
	reg2, err := registry.Start(ctx, ns.NC, registry.Config{ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg2.Stop)
	if _, err := ns.NC.Request(m.Subject, m.Data, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("delete sent again: %v", err)
	}
	if _, err := cl.Get(ctx, "brief"); !errors.Is(err, rh.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// TestNoRegistryIsStillReported: with no registry at all, a request gives up
// asking again after a few seconds and says what is missing, well before
// the caller's deadline.
func TestNoRegistryIsStillReported(t *testing.T) {
	ns := natstest.Start(t)
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	_, err = cl.Get(ctx, "anything")
	if !errors.Is(err, rh.ErrUnavailable) || err.Error() != "no registry service answers on "+ns.NC.ConnectedUrl()+": is `rhcli serve` running with it?" {
		t.Fatalf("get with no registry: %v, want unavailable saying no registry answers", err)
	}
}

// TestGetWaitsOutAStoreElectingALeader: while a NATS node that led the
// registry's bucket is replaced, the registry answers "unavailable" (its
// store did not answer), not "internal error"; the SDK asks again and the
// caller sees the answer once the store is back, not a failure.
func TestGetWaitsOutAStoreElectingALeader(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	var mu sync.Mutex
	failures := 2
	svcGet := svc.Handle(ctx, slog.New(slog.DiscardHandler), nil, func(context.Context, api.NameRequest) (*api.ClusterReply, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return nil, fmt.Errorf("registry: load: %w", jetstream.ErrNoStreamResponse)
		}
		return &api.ClusterReply{Cluster: &rh.Cluster{Name: "steady"}}, nil
	})
	srv, err := micro.AddService(ns.NC, micro.Config{Name: "registry", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	if err := srv.AddEndpoint("get", svcGet, micro.WithEndpointSubject(api.RegistrySubject(api.OpGet))); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Get(ctx, "steady")
	if err != nil {
		t.Fatalf("get while the store elects a leader: %v, want the cluster once it answers", err)
	}
	if c.Name != "steady" || failures != 0 {
		t.Fatalf("got %q after %d unanswered attempts left, want steady after both", c.Name, failures)
	}
}
