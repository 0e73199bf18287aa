package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/registry"
)

// nextChange waits for the next change of the list.
func nextChange(t *testing.T, ch <-chan client.ClusterChange) client.ClusterChange {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("the list watch ended")
		}
		return c
	case <-time.After(60 * time.Second):
		t.Fatal("no change of the list")
	}
	return client.ClusterChange{}
}

func TestWatchListShowsOnlyWhatTheCallerMayRead(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := e.user(t, "alice", rh.RoleMember)
	bob := e.user(t, "bob", rh.RoleMember)
	if _, err := alice.Create(ctx, "alices", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	list, changes, err := alice.WatchList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "alices" {
		t.Fatalf("alice's list = %v, want only alices", names(list))
	}
	// Bob's cluster is not alice's business until he shares it.
	if _, err := bob.Create(ctx, "bobs", byo("10.0.0.2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Share(ctx, "bobs", "alice", rh.AccessRead); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.Name != "bobs" || c.Removed || c.Cluster.Owner != "bob" {
		t.Fatalf("after the share: %+v, want bobs added", c)
	}
	if _, err := bob.Unshare(ctx, "bobs", "alice"); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.Name != "bobs" || !c.Removed {
		t.Fatalf("after the unshare: %+v, want bobs removed", c)
	}
	// Alice's own change comes next: nothing of bob's came in between.
	if _, err := alice.Teardown(ctx, "alices"); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.Name != "alices" || c.Cluster.Phase != rh.PhaseTearingDown {
		t.Fatalf("after teardown: %+v, want alices TearingDown", c)
	}
}

func TestWatchListChainsStreamsWithoutLosingChanges(t *testing.T) {
	// Streams end every 300 ms: the SDK asks again and sends what changed
	// meanwhile, once.
	reg := prometheus.NewRegistry()
	e := start(t, registry.Config{WatchMaxDuration: 300 * time.Millisecond, Registry: reg})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, changes, err := e.cl.WatchList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	streams := func() float64 { return counter(t, reg, "rh_registry_watch_streams_total") }
	nextStream := func() {
		t.Helper()
		n := streams()
		testkit.Eventually(t, 60*time.Second, "the SDK to ask for a new stream", func() bool { return streams() > n })
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := e.cl.Create(ctx, name, byo("10.0.0.1"), nil); err != nil {
			t.Fatal(err)
		}
		if c := nextChange(t, changes); c.Name != name || c.Removed {
			t.Fatalf("change %+v, want %s added", c, name)
		}
		nextStream()
	}
	if err := e.cl.Delete(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.Name != "b" || !c.Removed {
		t.Fatalf("change %+v, want b removed", c)
	}
	// Two more streams, then a change: nothing was repeated before it.
	nextStream()
	nextStream()
	if _, err := e.cl.Create(ctx, "d", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.Name != "d" || c.Removed {
		t.Fatalf("change %+v, want d added (and no repeat before it)", c)
	}
}
