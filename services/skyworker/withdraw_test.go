package skyworker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/workertest"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// twinSim is the simulator with a hook on the first launch it is sent.
type twinSim struct {
	*skysim.Server
	hooked atomic.Bool // the hook's own launch must pass straight through
	before func(body []byte)
}

func (w *twinSim) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/launch") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if w.hooked.CompareAndSwap(false, true) {
			w.before(body)
		}
	}
	w.Server.ServeHTTP(rw, r)
}

// A worker that stalled between its last confirm and its launch submit
// finds, when it records the launch, that another worker adopted the
// cluster and launched on its own: it withdraws its launch, so the cluster
// is provisioned once.
func TestALaunchSubmittedAfterATakeoverIsWithdrawn(t *testing.T) {
	bus := workertest.Start(t)
	sim := skysim.New(skysim.Options{Nodes: newFakeNodes(), LaunchLatency: 2 * time.Second})
	tw := &twinSim{Server: sim}
	url := workertest.Serve(t, tw)
	sky, err := skypilot.New(skypilot.Config{Endpoint: url, RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, RetryBudget: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{Bus: bus, t: t, sim: sim, sky: sky}
	ctx := context.Background()
	kv, err := bus.NS.JS.KeyValue(ctx, events.BucketSkyRequests)
	if err != nil {
		t.Fatal(err)
	}
	twin := make(chan string, 1)
	// Just before the worker's launch reaches SkyPilot, the twin (a worker
	// that adopted the cluster meanwhile) launches and records its own.
	tw.before = func(body []byte) {
		var req struct {
			Task        string `json:"task"`
			ClusterName string `json:"cluster_name"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("launch body: %v", err)
			return
		}
		id, err := sky.SubmitLaunch(ctx, skypilot.LaunchRequest{ClusterName: req.ClusterName, TaskYAML: req.Task})
		if err != nil {
			t.Errorf("the twin's launch: %v", err)
			return
		}
		en, err := kv.Get(ctx, "launch.twin")
		if err != nil {
			t.Errorf("launch record: %v", err)
			return
		}
		var rec map[string]any
		_ = json.Unmarshal(en.Value(), &rec)
		rec["state"], rec["request_id"], rec["owner"], rec["at"] = "submitted", id, "skyworker-twin", time.Now().UTC()
		b, _ := json.Marshal(rec)
		if _, err := kv.Put(ctx, "launch.twin", b); err != nil {
			t.Errorf("launch record: %v", err)
			return
		}
		twin <- id
	}
	e.startWorker()
	if _, err := e.Client.Create(ctx, "twin", onDemand(1), nil); err != nil {
		t.Fatal(err)
	}
	c := e.WaitFor("twin", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseUp {
		t.Fatalf("phase %s: %s", c.Status.Phase, c.Status.Message)
	}
	twinID := <-twin
	if n := sim.Provisions(); n != 1 {
		t.Fatalf("provisions = %d, want 1: %+v", n, sim.Requests())
	}
	for _, r := range sim.Requests() {
		if r.Name == "sky.launch" && r.ID != twinID && r.Status != "CANCELLED" {
			t.Fatalf("the stalled worker's launch %s is %s, want CANCELLED: %+v", r.ID, r.Status, sim.Requests())
		}
	}
}
