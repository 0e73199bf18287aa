package sagemakerworker_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/internal/workertest"
	"github.com/rhq/rh/services/sagemakerworker"
)

// BenchmarkCreateToUp measures rh's own overhead from a create request to
// the record showing Up, against a simulator whose phases last a
// millisecond each: registry, events, worker, sm's signed JSON 1.1
// round trips (create, describe polls), the key pair and the state reports.
func BenchmarkCreateToUp(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	// Real time: each phase before Training lasts a millisecond, and the
	// job's max runtime its real 24 hours.
	opts := sagemakersim.Options{TimeScale: 1, Logger: quiet, Timings: sagemakersim.Timings{
		Starting: time.Millisecond, Downloading: time.Millisecond, Uploading: time.Millisecond, Stopping: time.Millisecond,
		Training: time.Hour, KeepAliveTick: time.Hour,
	}}
	workertest.BenchCreateToUp(b, 50, compute(1), func(b *testing.B) *workertest.Bus {
		e := setup(b, opts)
		e.startBenchWorker(quiet)
		return e.Bus
	})
}

func (e *env) startBenchWorker(log *slog.Logger) {
	e.t.Helper()
	w, err := sagemakerworker.Start(context.Background(), e.NS.NC, sagemakerworker.Config{
		Client: e.quietClient(log), ProxyCommand: e.proxyCommand,
		PollMin: time.Millisecond, PollMax: 10 * time.Millisecond,
		ServiceConfig: worker.ServiceConfig{Logger: log, Worker: worker.Config{RetryBase: 20 * time.Millisecond}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Stop)
}
