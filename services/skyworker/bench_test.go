package skyworker_test

import (
	"testing"

	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/workertest"
)

// BenchmarkCreateToUp measures rh's own overhead from a create request to the
// record showing Up, against a simulator that provisions instantly: registry,
// events, worker, SkyPilot protocol round trips and the state report.
func BenchmarkCreateToUp(b *testing.B) {
	workertest.BenchCreateToUp(b, 100, onDemand(1), func(b *testing.B) *workertest.Bus {
		e := setup(b, skysim.Options{Nodes: newFakeNodes()})
		e.startWorker()
		return e.Bus
	})
}
