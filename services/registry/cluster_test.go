package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/serve"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/registry"
)

// On a three-node NATS cluster with replicated streams, losing a server loses
// no record and no event, and the registry keeps answering.
func TestRegistrySurvivesLosingANATSServer(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc, err := nats.Connect(c.Servers[0].ClientURL(), nats.Timeout(natstest.ConnectTimeout), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	limits := events.DefaultLimits()
	limits.Replicas = 3
	limits.EventsBytes, limits.StateBytes = 32<<20, 32<<20
	ctx := context.Background()
	js := natstest.JetStream(t, nc)
	// Stream creation can race the cluster's first elections: retry briefly.
	testkit.Poll(30*time.Second, func() bool {
		err = events.Setup(ctx, js, limits)
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Start(ctx, nc, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()
	cl, _ := client.New(nc, 10*time.Second)
	spec := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}
	for i := range 5 {
		if _, err := cl.Create(ctx, fmt.Sprintf("before-%d", i), spec, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Lose a server the registry is not connected to.
	c.Servers[2].Shutdown()
	c.Servers[2].WaitForShutdown()
	for i := range 5 {
		name := fmt.Sprintf("after-%d", i)
		var err error
		// Leaders that lived on the lost server are re-elected; a write may wait for that.
		testkit.Poll(10*time.Second, func() bool {
			if _, err = cl.Create(ctx, name, spec, nil); err == nil || rh.ErrorCode(err) == rh.ECONFLICT {
				err = nil
			}
			return err == nil
		})
		if err != nil {
			t.Fatalf("create %s with one server down: %v", name, err)
		}
	}
	cs, err := cl.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 10 {
		t.Fatalf("%d records after losing a server, want 10", len(cs))
	}
	st, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 {
		t.Fatalf("events stream has %d replicas, want 3", info.Config.Replicas)
	}
	if info.State.Msgs != 10 {
		t.Fatalf("%d create events after losing a server, want 10", info.State.Msgs)
	}
}

// A default set-up never lowers the replicas an operator raised; only an
// explicit count changes them.
func TestSetupNeverLowersReplicasByDefault(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL, nats.Timeout(natstest.ConnectTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := natstest.JetStream(t, nc)
	ctx := context.Background()
	raised := events.DefaultLimits()
	raised.Replicas, raised.EventsBytes, raised.StateBytes = 3, 32<<20, 32<<20
	testkit.Poll(30*time.Second, func() bool { err = events.Setup(ctx, js, raised); return err == nil })
	if err != nil {
		t.Fatal(err)
	}
	byDefault := raised
	byDefault.Replicas, byDefault.KeepHigherReplicas = 1, true
	if err := events.Setup(ctx, js, byDefault); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{events.StreamEvents, "KV_" + events.BucketClusters, "KV_" + events.BucketSMJobs} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("%s has %d replicas after a default set-up, want the 3 it had", name, got)
		}
	}
	// serve --check shows them, each with a leader.
	hs, err := serve.Check(ctx, serve.Options{NATSURL: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Replicas != 3 || h.Leader == "" {
			t.Errorf("--check: %+v, want 3 replicas and a leader", h)
		}
	}
}
