package skyworker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/skysim"
)

// BenchmarkCreateToUp measures rh's own overhead from a create request to the
// record showing Up, against a simulator that provisions instantly: registry,
// events, worker, SkyPilot protocol round trips and the state report.
func BenchmarkCreateToUp(b *testing.B) {
	b.Run("one-at-a-time", func(b *testing.B) {
		e := setup(b, skysim.Options{Nodes: newFakeNodes()})
		e.startWorker()
		b.ResetTimer()
		for i := range b.N {
			name := fmt.Sprintf("one-%d", i)
			e.createAndWait(b, []string{name})
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/cluster")
	})
	b.Run("100-together", func(b *testing.B) {
		e := setup(b, skysim.Options{Nodes: newFakeNodes()})
		e.startWorker()
		b.ResetTimer()
		for i := range b.N {
			names := make([]string, 100)
			for j := range names {
				names[j] = fmt.Sprintf("many-%d-%d", i, j)
			}
			e.createAndWait(b, names)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/cluster")
	})
}

// createAndWait creates the clusters at once and waits until all are Up,
// watching the records bucket once rather than per cluster.
func (e *env) createAndWait(b *testing.B, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := e.ns.JS.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		b.Fatal(err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	want := map[string]bool{}
	for _, n := range names {
		want[events.ClusterKey(n)] = true
	}
	errs := make(chan error, len(names))
	for _, n := range names {
		go func() {
			_, err := e.cl.Create(ctx, n, onDemand(1), nil)
			errs <- err
		}()
	}
	for range names {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	for len(want) > 0 {
		select {
		case <-ctx.Done():
			b.Fatalf("%d clusters not Up in time", len(want))
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
				b.Fatalf("%s: %s %s", c.Name, c.Status.Phase, c.Status.Message)
			}
		}
	}
}
