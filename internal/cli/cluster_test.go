package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
)

// registryEnv is a real NATS with the registry, for rhcli to talk to.
type registryEnv struct {
	ns  *natstest.Server
	env map[string]string
}

func startRegistry(t *testing.T) *registryEnv {
	t.Helper()
	ns := natstest.Start(t)
	reg, err := registry.Start(context.Background(), ns.NC, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	return &registryEnv{ns: ns, env: map[string]string{"RH_NATS_URL": ns.URL, "USER": "tester", "HOME": t.TempDir()}}
}

// rhcli runs the CLI in-process and returns its exit code, stdout and stderr.
func (e *registryEnv) rhcli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return e.rhcliIn(t, strings.NewReader(""), args...)
}

// rhcliIn is rhcli with in as the CLI's standard input.
func (e *registryEnv) rhcliIn(t *testing.T, in io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Run(ctx, args, cli.IO{In: in, Out: &out, Err: &errb, Getenv: func(k string) string { return e.env[k] }})
	return code, out.String(), errb.String()
}

func (e *registryEnv) nothingStored(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	kv, _ := e.ns.JS.KeyValue(ctx, events.BucketClusters)
	if keys, err := kv.Keys(ctx); err == nil || err != jetstream.ErrNoKeysFound {
		t.Fatalf("records were stored: %v %v", keys, err)
	}
	st, _ := e.ns.JS.Stream(ctx, events.StreamEvents)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 0 {
		t.Fatalf("%d events were published", info.State.Msgs)
	}
}

func TestInvalidInputExitsTwoNamingTheFieldAndChangesNothing(t *testing.T) {
	e := startRegistry(t)
	dir := t.TempDir()
	notKey := filepath.Join(dir, "notakey")
	_ = os.WriteFile(notKey, []byte("hello"), 0o600)
	badYAML := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(badYAML, []byte("name: x\nkind: byo\nbyo: {ips: [1.2.3.4]}\ncolour: red\n"), 0o600)
	cases := []struct {
		args  []string
		field string
	}{
		{[]string{"cluster", "create", "Bad_Name", "--ips", "1.2.3.4"}, "name"},
		{[]string{"cluster", "create", "ssh", "--ips", "1.2.3.4"}, "reserved"},
		{[]string{"cluster", "create", "a", "--ips", "1.2.3.4,999.1.1.1"}, "byo.ips[1]"},
		{[]string{"cluster", "create", "a", "--ips", "1.2.3.4", "--ssh-port", "0"}, "byo.ssh_port"},
		{[]string{"cluster", "create", "a", "--ips", "1.2.3.4", "--ssh-key", notKey}, "--ssh-key"},
		{[]string{"cluster", "create", "a", "--ips", "1.2.3.4", "--password-env", "NOPE"}, "--password-env"},
		{[]string{"cluster", "create", "a", "--instance-type", "A100:x"}, "ondemand.instance_type"},
		{[]string{"cluster", "create", "a", "--instance-type", "m5.xlarge", "--provider", "moon"}, "ondemand.provider"},
		{[]string{"cluster", "create", "a", "--instance-type", "m5.xlarge", "--autostop-mins", "-2"}, "autostop_mins"},
		{[]string{"cluster", "create", "a", "--instance-type", "m5.xlarge", "--region", "us-east-1"}, "ondemand.region"},
		{[]string{"cluster", "create", "a", "--instance-type", "ml.m5.large", "--role", "arn:aws:iam::1:role/x"}, "sagemaker.role"},
		{[]string{"cluster", "create", "a", "--kind", "sagemaker", "--instance-type", "p3.2xlarge"}, "sagemaker.instance_type"},
		{[]string{"cluster", "create", "a", "--kind", "moon"}, "kind"},
		{[]string{"cluster", "create", "a"}, "kind"},
		{[]string{"cluster", "create", "-f", badYAML}, "colour"},
		{[]string{"cluster", "create", "a", "--no-such-flag"}, "no-such-flag"},
		{[]string{"cluster", "get"}, "NAME"},
		{[]string{"cluster", "list", "-o", "xml"}, "--output"},
	}
	for _, tc := range cases {
		code, _, stderr := e.rhcli(t, tc.args...)
		if code != cli.ExitInvalid {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tc.args, code, stderr)
			continue
		}
		if !strings.Contains(stderr, tc.field) {
			t.Errorf("%v: stderr %q does not name %q", tc.args, stderr, tc.field)
		}
	}
	// An autostop on a missing cluster is not found, an invalid one invalid.
	if code, _, _ := e.rhcli(t, "cluster", "autostop", "nope", "5"); code != cli.ExitNotFound {
		t.Errorf("autostop on missing cluster: exit %d, want 3", code)
	}
	e.nothingStored(t)
}

func TestClusterLifecycleThroughRhcli(t *testing.T) {
	e := startRegistry(t)
	yamlPath := filepath.Join(t.TempDir(), "cluster.yaml")
	_ = os.WriteFile(yamlPath, []byte("name: gpu-a\nondemand:\n  instance_type: A100:4\n  num_instances: 2\n  provider: aws\n  region: us-east-1\nautostop_mins: 30\n"), 0o600)
	code, out, stderr := e.rhcli(t, "cluster", "create", "-f", yamlPath, "-o", "json")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	var c rh.Cluster
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("create -o json is not a cluster: %v\n%s", err, out)
	}
	if c.Spec.Kind != rh.KindOnDemand || c.Spec.OnDemand.NumInstances != 2 || c.Spec.Autostop() != 30 {
		t.Fatalf("created spec %+v", c.Spec)
	}
	if code, _, stderr := e.rhcli(t, "cluster", "create", "gpu-a", "--instance-type", "m5.xlarge"); code != cli.ExitConflict || !strings.Contains(stderr, "already exists") {
		t.Fatalf("duplicate create: exit %d %q, want 4", code, stderr)
	}
	code, out, _ = e.rhcli(t, "cluster", "list")
	if code != 0 || !strings.Contains(out, "gpu-a") || !strings.Contains(out, "Pending") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = e.rhcli(t, "cluster", "get", "gpu-a", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "instance_type: A100:4") {
		t.Fatalf("get -o yaml: %d\n%s", code, out)
	}
	if code, _, _ := e.rhcli(t, "cluster", "autostop", "gpu-a", "45"); code != 0 {
		t.Fatalf("autostop: exit %d", code)
	}
	if code, _, _ := e.rhcli(t, "cluster", "get", "missing"); code != cli.ExitNotFound {
		t.Fatalf("get missing: exit %d, want 3", code)
	}
	if code, _, stderr := e.rhcli(t, "cluster", "delete", "gpu-a"); code != cli.ExitConflict || !strings.Contains(stderr, "tear it down first") {
		t.Fatalf("delete of a Pending cluster: exit %d %q, want 4", code, stderr)
	}
	code, out, _ = e.rhcli(t, "cluster", "teardown", "gpu-a")
	if code != 0 || !strings.Contains(out, "TearingDown") {
		t.Fatalf("teardown: %d\n%s", code, out)
	}
	code, out, _ = e.rhcli(t, "cluster", "events", "gpu-a", "-o", "json")
	var hist []rh.Transition
	if err := json.Unmarshal([]byte(out), &hist); err != nil || code != 0 {
		t.Fatalf("events -o json: %d %v\n%s", code, err, out)
	}
	if len(hist) != 3 || hist[0].To != rh.PhasePending || hist[2].To != rh.PhaseTearingDown {
		t.Fatalf("history = %+v", hist)
	}
}

func TestNothingAnsweringSaysHowToStartRh(t *testing.T) {
	e := startRegistry(t)
	e.env["RH_NATS_URL"] = "nats://127.0.0.1:1"
	code, _, stderr := e.rhcli(t, "cluster", "list")
	if code != cli.ExitError || !strings.Contains(stderr, "rhcli serve") || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func waitOutput(t *testing.T, b *testkit.SyncBuffer, want string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("output showing %q", want), func() bool { return strings.Contains(b.String(), want) })
}

func TestEventsFollowAndCreateWaitSeeWorkerReports(t *testing.T) {
	e := startRegistry(t)
	// A stand-in worker: reports Provisioning then Up for every create.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := worker.New(ctx, e.ns.JS, worker.Config{Kind: rh.KindBYO, Durable: "fake"}, func(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
		if op != events.OpCreate {
			return nil
		}
		if err := r.Report(ctx, rh.PhaseProvisioning, "connecting to 1 node", nil, nil); err != nil {
			return err
		}
		return r.Report(ctx, rh.PhaseUp, "1/1 nodes up", []rh.Node{{Address: "10.1.1.1", Port: 22, User: "ml", Reachable: true}}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	wdone := make(chan struct{})
	go func() { _ = w.Run(ctx); close(wdone) }()
	defer func() { cancel(); <-wdone }()

	code, out, stderr := e.rhcli(t, "cluster", "create", "fol", "--ips", "10.1.1.1", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("create --wait: exit %d: %s", code, stderr)
	}
	var c rh.Cluster
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Status.Phase != rh.PhaseUp || len(c.Status.Nodes) != 1 {
		t.Fatalf("create --wait returned %s (%v)", out, err)
	}

	var followOut testkit.SyncBuffer
	fctx, fcancel := context.WithCancel(context.Background())
	fdone := make(chan int)
	go func() {
		fdone <- cli.Run(fctx, []string{"cluster", "events", "fol", "--follow"}, cli.IO{Out: &followOut, Err: io.Discard, Getenv: func(k string) string { return e.env[k] }})
	}()
	waitOutput(t, &followOut, "1/1 nodes up")
	if code, _, _ := e.rhcli(t, "cluster", "teardown", "fol"); code != 0 {
		t.Fatal("teardown failed")
	}
	waitOutput(t, &followOut, "teardown requested")
	fcancel()
	if code := <-fdone; code != 0 {
		t.Fatalf("events --follow exited %d after cancel", code)
	}
}

func TestIPsMayBeSSHConfigAliases(t *testing.T) {
	e := startRegistry(t)
	home := e.env["HOME"]
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(home, ".ssh", "lab_key")
	const keyBody = "-----BEGIN OPENSSH PRIVATE KEY-----\nbGFiLWtleQ==\n-----END OPENSSH PRIVATE KEY-----\n"
	if err := os.WriteFile(keyPath, []byte(keyBody), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("Host gpu1\n  HostName 10.8.0.11\nHost gpu2\n  HostName 10.8.0.12\nHost gpu1 gpu2\n  User ml\n  Port 2222\n  IdentityFile %s\n  ProxyJump jump@bastion.lab:2200\n", keyPath)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := e.rhcli(t, "cluster", "create", "lab", "--ips", "gpu1,gpu2", "-o", "json")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	var c rh.Cluster
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	b := c.Spec.BYO
	if strings.Join(b.IPs, ",") != "10.8.0.11,10.8.0.12" || b.SSHUser != "ml" || b.SSHPort != 2222 || b.JumpHost != "jump@bastion.lab:2200" || !b.HasKey {
		t.Fatalf("aliases resolved to %+v", b)
	}
	if strings.Contains(out, "bGFiLWtleQ") {
		t.Fatal("the key from the ssh config leaked into the record")
	}
	// A flag still wins over the config.
	code, out, _ = e.rhcli(t, "cluster", "create", "lab2", "--ips", "gpu1", "--ssh-user", "other", "-o", "json")
	if err := json.Unmarshal([]byte(out), &c); code != 0 || err != nil || c.Spec.BYO.SSHUser != "other" {
		t.Fatalf("--ssh-user did not win: %s", out)
	}
}

func TestClusterListFiltersByKindAndPhase(t *testing.T) {
	e := startRegistry(t)
	for _, args := range [][]string{
		{"bx", "--ips", "10.0.0.1"},
		{"od", "--instance-type", "m5.xlarge"},
		{"sm", "--instance-type", "ml.m5.large", "--role", "MySageMakerRole"},
	} {
		if code, _, stderr := e.rhcli(t, append([]string{"cluster", "create"}, args...)...); code != 0 {
			t.Fatalf("create %v: exit %d: %s", args, code, stderr)
		}
	}
	if code, _, stderr := e.rhcli(t, "cluster", "teardown", "od"); code != 0 {
		t.Fatalf("teardown: exit %d: %s", code, stderr)
	}
	cases := []struct {
		filter []string
		want   string
	}{
		{nil, "bx,od,sm"},
		{[]string{"--kind", "byo"}, "bx"},
		{[]string{"--kind", "byo,SageMaker"}, "bx,sm"},
		{[]string{"--kind", "byo", "--kind", "ondemand"}, "bx,od"},
		{[]string{"--phase", "tearingdown"}, "od"},
		{[]string{"--phase", "Pending", "--kind", "ondemand"}, ""},
		{[]string{"--phase", "Up"}, ""},
	}
	for _, tc := range cases {
		code, out, stderr := e.rhcli(t, append([]string{"cluster", "list", "-o", "json"}, tc.filter...)...)
		var cs []rh.ClusterSummary
		if err := json.Unmarshal([]byte(out), &cs); code != 0 || err != nil || cs == nil {
			t.Fatalf("list %v: exit %d, %v: %q %s", tc.filter, code, err, out, stderr)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		if got := strings.Join(names, ","); got != tc.want {
			t.Errorf("list %v = %q, want %q", tc.filter, got, tc.want)
		}
	}
	// A value that is not a kind or phase exits 2 naming the flag and the
	// values it takes.
	for _, tc := range []struct{ args, want []string }{
		{[]string{"--kind", "moon"}, []string{"--kind", `"moon"`, "byo, ondemand, sagemaker"}},
		{[]string{"--phase", "Upp"}, []string{"--phase", `"Upp"`, "Pending", "TearingDown", "Failed"}},
		{[]string{"--kind", "byo,"}, []string{"--kind", `""`}},
	} {
		code, _, stderr := e.rhcli(t, append([]string{"cluster", "list"}, tc.args...)...)
		if code != cli.ExitInvalid {
			t.Errorf("list %v: exit %d, want 2 (%q)", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("list %v: stderr %q does not say %s", tc.args, stderr, w)
			}
		}
	}
}
