package sagemakerworker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/services/sagemakerworker"
)

// BenchmarkCreateToUp measures rh's own overhead from a create request to
// the record showing Up, against a simulator whose phases last a
// millisecond each: registry, events, worker, the SDK's signed JSON 1.1
// round trips (create, describe polls), the key pair and the state reports.
func BenchmarkCreateToUp(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	// Real time: each phase before Training lasts a millisecond, and the
	// job's max runtime its real 24 hours.
	opts := sagemakersim.Options{TimeScale: 1, Logger: quiet, Timings: sagemakersim.Timings{
		Starting: time.Millisecond, Downloading: time.Millisecond, Uploading: time.Millisecond, Stopping: time.Millisecond,
		Training: time.Hour, KeepAliveTick: time.Hour,
	}}
	b.Run("one-at-a-time", func(b *testing.B) {
		e := setup(b, opts)
		e.startBenchWorker(quiet)
		b.ResetTimer()
		for i := range b.N {
			e.createAndWait(b, []string{fmt.Sprintf("one-%d", i)})
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/cluster")
	})
	b.Run("50-together", func(b *testing.B) {
		e := setup(b, opts)
		e.startBenchWorker(quiet)
		b.ResetTimer()
		for i := range b.N {
			names := make([]string, 50)
			for j := range names {
				names[j] = fmt.Sprintf("many-%d-%d", i, j)
			}
			e.createAndWait(b, names)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50), "ns/cluster")
	})
}

func (e *env) startBenchWorker(log *slog.Logger) {
	e.t.Helper()
	w, err := sagemakerworker.Start(context.Background(), e.ns.NC, sagemakerworker.Config{
		Client: e.quietClient(log), ProxyCommand: e.proxyCommand, Logger: log,
		PollMin: time.Millisecond, PollMax: 10 * time.Millisecond, RetryBase: 20 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Stop)
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
			_, err := e.cl.Create(ctx, n, compute(1), nil)
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
