package serve_test

import (
	"context"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/serve"
)

// TestSimOnDemandClusterEndToEnd: `rhcli serve --sim` brings an on-demand
// cluster up on the in-process SkyPilot simulator, with real sshd nodes, and
// tears it down again.
func TestSimOnDemandClusterEndToEnd(t *testing.T) {
	r := startServe(t, serve.Options{DataDir: t.TempDir(), Sim: true, Services: []string{"registry", "skyworker"}})
	cl := connect(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Create(ctx, "simmed", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "CPU:2", NumInstances: 2}}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := cl.WaitPhase(ctx, "simmed", rh.PhaseUp)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Status.Nodes) != 2 || c.Status.Nodes[0].Port == 0 {
		t.Fatalf("nodes = %+v", c.Status.Nodes)
	}
	if _, err := cl.Teardown(ctx, "simmed"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitPhase(ctx, "simmed", rh.PhaseTerminated); err != nil {
		t.Fatal(err)
	}
}
