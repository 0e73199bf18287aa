package registry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/registry"
)

func benchEnv(b *testing.B) *env {
	b.Helper()
	ns := natstest.Start(b)
	reg, err := registry.Start(context.Background(), ns.NC, registry.Config{ReconcileEvery: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(reg.Stop)
	cl := clientFor(b, ns)
	return &env{ns: ns, reg: reg, cl: cl}
}

// BenchmarkCreate measures creates through the API, 16 callers at once.
func BenchmarkCreate(b *testing.B) {
	e := benchEnv(b)
	spec := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.cl.Create(context.Background(), fmt.Sprintf("c-%d", n.Add(1)), spec, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
}

// BenchmarkApplyReports measures state reports applied per second: workers
// publish reports for 100 clusters; the clock stops when the last is applied.
func BenchmarkApplyReports(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	const clusters = 100
	for i := range clusters {
		if _, err := e.cl.Create(ctx, fmt.Sprintf("r-%d", i), rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"10.0.0.1"}}}, nil); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Now().UTC()
	reports := make([][]byte, b.N)
	subjects := make([]string, b.N)
	for i := range b.N {
		name := fmt.Sprintf("r-%d", i%clusters)
		rep := events.StateReport{Cluster: name, Kind: rh.KindBYO, Generation: 1, Phase: rh.PhaseUp,
			Message: fmt.Sprintf("report %d", i), Worker: "bench", ObservedAt: base.Add(time.Duration(i) * time.Microsecond)}
		env, err := events.NewState("bench", rep)
		if err != nil {
			b.Fatal(err)
		}
		reports[i], _ = env.Marshal()
		subjects[i] = events.StateSubject(rh.KindBYO, name)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < b.N; i += 4 {
				if _, err := e.ns.JS.PublishAsync(subjects[i], reports[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-e.ns.JS.PublishAsyncComplete()
	// Wait until every cluster shows its last report.
	for i := max(0, b.N-clusters); i < b.N; i++ {
		want := fmt.Sprintf("report %d", i)
		name := fmt.Sprintf("r-%d", i%clusters)
		testkit.WaitErr(b, time.Minute, name+" to show "+want, func() error {
			c, err := e.cl.Get(ctx, name)
			if err == nil && c.Status.Message != want {
				err = fmt.Errorf("message %q", c.Status.Message)
			}
			return err
		})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reports/s")
}

// BenchmarkList10k measures `cluster list` with 10,000 records.
func BenchmarkList10k(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	spec := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 10000; i += 16 {
				if _, err := e.cl.Create(ctx, fmt.Sprintf("l-%05d", i), spec, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		cs, err := e.cl.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) != 10000 {
			b.Fatalf("listed %d", len(cs))
		}
	}
}
