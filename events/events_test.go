package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/events/schema"
)

func sampleCluster() *rh.Cluster {
	spec := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "A100:4", NumInstances: 2, Provider: "aws", Region: "us-east-1", OpenPorts: []int{8080}}}
	spec.Normalize()
	return &rh.Cluster{Name: "gpu-a", Spec: spec, Generation: 3}
}

func TestIntentIDsAreDeterministic(t *testing.T) {
	c := sampleCluster()
	a, err := events.NewIntent("rh/registry", events.OpCreate, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := events.NewIntent("rh/registry", events.OpCreate, c, 0)
	if a.ID != "gpu-a:create:3" || a.ID != b.ID {
		t.Fatalf("ids %q and %q, want both gpu-a:create:3", a.ID, b.ID)
	}
	r1, _ := events.NewIntent("rh/registry", events.OpRefresh, c, 7)
	r2, _ := events.NewIntent("rh/registry", events.OpRefresh, c, 8)
	if r1.ID == r2.ID {
		t.Fatalf("refreshes of different periods share id %q", r1.ID)
	}
}

// Every event the code publishes must validate against its checked-in schema,
// so publishers in other languages can rely on the schemas.
func TestPublishedEventsMatchTheirSchemas(t *testing.T) {
	c := sampleCluster()
	for _, op := range []string{events.OpCreate, events.OpTeardown, events.OpUpdate, events.OpRefresh} {
		env, err := events.NewIntent("rh/registry", op, c, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Marshal()
		if err := schema.Validate(env.Type, b); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
	byo := rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"10.0.0.1", "node-2.lan"}, SSHUser: "ml", HasKey: true}}
	byo.Normalize()
	env, _ := events.NewIntent("rh/registry", events.OpCreate, &rh.Cluster{Name: "b", Spec: byo, Generation: 1}, 0)
	b, _ := env.Marshal()
	if err := schema.Validate(env.Type, b); err != nil {
		t.Errorf("byo create: %v", err)
	}
	rep := events.StateReport{
		Cluster: "gpu-a", Kind: rh.KindOnDemand, Generation: 3, Phase: rh.PhaseUp, Message: "2/2 nodes up",
		Nodes: []rh.Node{{Address: "10.0.0.1", Port: 22, User: "ubuntu", Reachable: true, HostKey: "SHA256:x",
			Facts: &rh.Facts{OS: "Ubuntu 22.04", CPUs: 8, MemoryBytes: 1 << 34, GPUs: []rh.GPU{{Name: "A100", MemoryBytes: 40 << 30}}}}},
		Info: map[string]string{"cloud": "aws"}, Worker: "skyworker-1", ObservedAt: time.Now(),
	}
	st, _ := events.NewState("rh/skyworker", rep)
	b, _ = st.Marshal()
	if err := schema.Validate(st.Type, b); err != nil {
		t.Errorf("state: %v", err)
	}
	// And a schema must reject what Decode rejects: an unknown data field.
	bad := strings.Replace(string(b), `"worker"`, `"wrker"`, 1)
	if err := schema.Validate(st.Type, []byte(bad)); err == nil {
		t.Error("schema accepted a state report with a misspelt field")
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	env, _ := events.NewIntent("rh/registry", events.OpTeardown, sampleCluster(), 0)
	b, _ := env.Marshal()
	got, data, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	in, ok := data.(*events.ClusterIntent)
	if !ok || in.Cluster != "gpu-a" || in.Generation != 3 || got.Type != events.TypeTeardown {
		t.Fatalf("decoded %+v %+v", got, data)
	}
}

func TestDecodeNamesWhatIsWrong(t *testing.T) {
	env, _ := events.NewIntent("rh/registry", events.OpCreate, sampleCluster(), 0)
	good, _ := env.Marshal()
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name  string
		input []byte
		field string
	}{
		{"not json", []byte("{"), "envelope"},
		{"unknown envelope field", mutate(func(m map[string]any) { m["extra"] = 1 }), "extra"},
		{"missing id", mutate(func(m map[string]any) { delete(m, "id") }), "id"},
		{"missing source", mutate(func(m map[string]any) { delete(m, "source") }), "source"},
		{"missing time", mutate(func(m map[string]any) { delete(m, "time") }), "time"},
		{"wrong specversion", mutate(func(m map[string]any) { m["specversion"] = "0.3" }), "specversion"},
		{"unknown type", mutate(func(m map[string]any) { m["type"] = "com.example.thing" }), "not an rh event type"},
		{"wrong version", mutate(func(m map[string]any) { m["type"] = "dev.rh.cluster.create.v9" }), "unsupported version"},
		{"missing data", mutate(func(m map[string]any) { delete(m, "data") }), "data"},
		{"unknown data field", mutate(func(m map[string]any) { m["data"].(map[string]any)["color"] = "red" }), "color"},
		{"missing generation", mutate(func(m map[string]any) { delete(m["data"].(map[string]any), "generation") }), "data.generation"},
		{"invalid spec", mutate(func(m map[string]any) {
			m["data"].(map[string]any)["spec"].(map[string]any)["ondemand"].(map[string]any)["provider"] = "moon"
		}), "provider"},
		{"subject mismatch", mutate(func(m map[string]any) { m["subject"] = "other" }), "subject"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := events.Decode(tc.input)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !errors.Is(err, events.ErrDecode) {
				t.Fatalf("error %v does not match ErrDecode", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	env, _ := events.NewIntent("rh/registry", events.OpCreate, sampleCluster(), 0)
	b, _ := env.Marshal()
	f.Add(b)
	st, _ := events.NewState("w", events.StateReport{Cluster: "a", Kind: rh.KindBYO, Generation: 1, Phase: rh.PhaseUp, Worker: "w", ObservedAt: time.Now()})
	sb, _ := st.Marshal()
	f.Add(sb)
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, data, err := events.Decode(b)
		if err != nil {
			if data != nil {
				t.Fatal("data returned with an error")
			}
			return
		}
		// What decodes must encode again and decode to the same type.
		out, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := events.Decode(out); err != nil {
			t.Fatalf("re-decode of accepted event failed: %v", err)
		}
	})
}
