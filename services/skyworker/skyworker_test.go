package skyworker_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/ssh"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/simnodes"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/internal/workertest"
	"github.com/rhq/rh/services/skyworker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// fakeNodes is a NodeProvider for tests that need addresses, not SSH.
type fakeNodes struct {
	mu       sync.Mutex
	live     map[string]int
	released map[string]int
	next     int
}

func newFakeNodes() *fakeNodes {
	return &fakeNodes{live: map[string]int{}, released: map[string]int{}}
}

func fakeKey(cluster string) string {
	return "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKEKEY" + cluster + "\n-----END OPENSSH PRIVATE KEY-----\n"
}

func (f *fakeNodes) Provision(_ context.Context, cluster string, n int) ([]skysim.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	eps := make([]skysim.Endpoint, n)
	for i := range eps {
		f.next++
		eps[i] = skysim.Endpoint{InternalIP: fmt.Sprintf("10.0.%d.%d", f.next/250, f.next%250+1), ExternalIP: fmt.Sprintf("127.0.%d.%d", f.next/250, f.next%250+1),
			SSHPort: 22, SSHUser: "ubuntu", PrivateKeyPEM: []byte(fakeKey(cluster))}
	}
	f.live[cluster] = n
	return eps, nil
}

func (f *fakeNodes) Release(_ context.Context, cluster string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live[cluster] > 0 {
		f.released[cluster]++
	}
	delete(f.live, cluster)
	return nil
}

func (f *fakeNodes) Live(cluster string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[cluster]
}

type env struct {
	*workertest.Bus
	t   testing.TB
	sim *skysim.Server
	sky *skypilot.Client
}

func setup(t testing.TB, opts skysim.Options) *env {
	t.Helper()
	bus := workertest.Start(t)
	sim := skysim.New(opts)
	url := workertest.Serve(t, sim)
	sky, err := skypilot.New(skypilot.Config{Endpoint: url, RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, RetryBudget: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &env{Bus: bus, t: t, sim: sim, sky: sky}
}

// startWorker starts a skyworker; it is stopped at cleanup unless the test
// stops it first.
func (e *env) startWorker() func() {
	e.t.Helper()
	return e.startWorkerOn(e.NS.NC)
}

func (e *env) startWorkerOn(nc *nats.Conn) func() {
	e.t.Helper()
	w, err := skyworker.Start(context.Background(), nc, skyworker.Config{SkyPilot: e.sky, ServiceConfig: worker.ServiceConfig{Worker: workertest.FastLoop}})
	if err != nil {
		e.t.Fatal(err)
	}
	return workertest.StopAtCleanup(e.t, w.Stop)
}

func onDemand(n int) rh.Spec {
	return rh.Spec{Kind: rh.KindOnDemand, OnDemand: &rh.OnDemandSpec{InstanceType: "CPU:2+", NumInstances: n, Provider: "aws", Region: "us-east-1"}}
}

// TestClusterLifecycleOverRealSSH: a 2-node cluster comes Up with nodes rh can
// really log in to, the key only in rh_secrets; autostop changes show; a
// teardown leaves nothing running.
func TestClusterLifecycleOverRealSSH(t *testing.T) {
	nodes := simnodes.New(simnodes.Options{})
	t.Cleanup(func() { _ = nodes.Close() })
	e := setup(t, skysim.Options{Nodes: nodes})
	e.startWorker()
	ctx := context.Background()

	if _, err := e.Client.Create(ctx, "sky-a", onDemand(2), nil); err != nil {
		t.Fatal(err)
	}
	c := e.WaitFor("sky-a", "Up", func(c *rh.Cluster) bool { return c.Status.Phase.Final() || c.Status.Phase == rh.PhaseUp })
	if c.Status.Phase != rh.PhaseUp {
		t.Fatalf("phase %s: %s", c.Status.Phase, c.Status.Message)
	}
	if len(c.Status.Nodes) != 2 {
		t.Fatalf("nodes = %+v, want 2", c.Status.Nodes)
	}
	for _, n := range c.Status.Nodes {
		if n.Address == "" || n.Port == 0 || n.User == "" || n.InternalAddress == "" {
			t.Fatalf("node lacks address/port/user: %+v", n)
		}
	}
	if c.Status.Info["cloud"] != "AWS" || c.Status.Info["region"] != "us-east-1" || c.Status.Info["autostop"] != "off" || c.Status.Info["resources"] == "" {
		t.Fatalf("info = %v", c.Status.Info)
	}
	sec := e.Secrets("sky-a")
	if sec == nil || !strings.Contains(sec.SSHPrivateKey, "PRIVATE KEY") {
		t.Fatalf("key not in rh_secrets: %+v", sec)
	}
	// The key reaches every node over real SSH, as the gateway will use it.
	signer, err := ssh.ParsePrivateKey([]byte(sec.SSHPrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Status.Nodes {
		cc, err := ssh.Dial("tcp", net.JoinHostPort(n.Address, strconv.Itoa(n.Port)), &ssh.ClientConfig{
			User: n.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatalf("ssh %s:%d: %v", n.Address, n.Port, err)
		}
		sess, err := cc.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.CombinedOutput("echo ok")
		cc.Close()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("run on %s: %q %v", n.Address, out, err)
		}
	}
	e.KeyNowhereElse(c, sec)

	if _, err := e.Client.SetAutostop(ctx, "sky-a", 30); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("sky-a", "autostop in info", func(c *rh.Cluster) bool {
		return c.Status.Info["autostop"] == "30 min idle, then down" && c.Status.ObservedGeneration == c.Generation
	})

	if _, err := e.Client.Teardown(ctx, "sky-a"); err != nil {
		t.Fatal(err)
	}
	gone := e.WaitPhase("sky-a", rh.PhaseTerminated)
	if _, live := gone.Status.Info["skypilot_status"]; live || gone.Status.Info["autostop"] != "" || gone.Status.Info["skypilot_cluster"] == "" {
		t.Fatalf("a terminated cluster's info still shows the live cluster, or no longer names it: %v", gone.Status.Info)
	}
	if st := e.sim.ClusterState("sky-a"); st != "" {
		t.Fatalf("SkyPilot still has the cluster: %s", st)
	}
	if n := nodes.Live(""); n != 0 {
		t.Fatalf("%d sshd nodes still running", n)
	}
	e.Forgotten("sky-a")
	if e.sim.Provisions() != 1 || e.sim.CountRequests("sky.launch") != 1 {
		t.Fatalf("launches = %d, provisions = %d; want 1, 1", e.sim.CountRequests("sky.launch"), e.sim.Provisions())
	}
}

// TestWorkerKilledMidLaunchLaunchesOnce: a worker stopped while SkyPilot is
// provisioning is replaced; the new one waits on the recorded launch.
func TestWorkerKilledMidLaunchLaunchesOnce(t *testing.T) {
	nodes := newFakeNodes()
	e := setup(t, skysim.Options{Nodes: nodes, LaunchLatency: 1500 * time.Millisecond})
	stopA := e.startWorker()
	ctx := context.Background()
	if _, err := e.Client.Create(ctx, "kill-me", onDemand(1), nil); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("kill-me", "Provisioning", func(c *rh.Cluster) bool {
		return c.Status.Phase == rh.PhaseProvisioning && strings.Contains(c.Status.Message, "request")
	})
	stopA()
	if st := e.sim.ClusterState("kill-me"); st != "INIT" {
		t.Fatalf("SkyPilot state after the worker died = %q, want INIT (launch still running)", st)
	}
	e.startWorker()
	c := e.WaitFor("kill-me", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseUp {
		t.Fatalf("phase %s: %s", c.Status.Phase, c.Status.Message)
	}
	if n := e.sim.CountRequests("sky.launch"); n != 1 {
		t.Fatalf("sky.launch requests = %d, want exactly 1: %+v", n, e.sim.Requests())
	}
	if n := e.sim.Provisions(); n != 1 {
		t.Fatalf("provisions = %d, want 1", n)
	}
}

// TestWorkerKilled9MidLaunchIsReplacedPromptly: a worker that vanishes
// mid-launch (its connection gone: no nak, no lease renewal, no heartbeat,
// as after kill -9) is replaced by one started next to it, which adopts the
// recorded launch once the lease and the heartbeat lapse (default settings:
// seconds, well inside the wait's deadline, where a 30 s ack wait would
// not be) and launches nothing twice.
func TestWorkerKilled9MidLaunchIsReplacedPromptly(t *testing.T) {
	e := setup(t, skysim.Options{Nodes: newFakeNodes(), LaunchLatency: 2 * time.Second})
	nc := e.Conn()
	stopA := e.startWorkerOn(nc)
	ctx := context.Background()
	if _, err := e.Client.Create(ctx, "kill-9", onDemand(1), nil); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("kill-9", "Provisioning", func(c *rh.Cluster) bool {
		return c.Status.Phase == rh.PhaseProvisioning && strings.Contains(c.Status.Message, "request")
	})
	workertest.Kill(nc, stopA)
	killed := time.Now()
	e.startWorker()
	c := e.WaitFor("kill-9", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseUp {
		t.Fatalf("phase %s: %s", c.Status.Phase, c.Status.Message)
	}
	t.Logf("Up %s after the kill (for the record, not asserted)", time.Since(killed).Round(time.Millisecond))
	if n := e.sim.CountRequests("sky.launch"); n != 1 {
		t.Fatalf("sky.launch requests = %d, want exactly 1: %+v", n, e.sim.Requests())
	}
	if n := e.sim.Provisions(); n != 1 {
		t.Fatalf("provisions = %d, want 1", n)
	}
}

// TestQuotaErrorFails: SkyPilot's ResourcesUnavailableError fails the cluster
// with its message, without colour codes, and is not retried.
func TestQuotaErrorFails(t *testing.T) {
	e := setup(t, skysim.Options{Nodes: newFakeNodes()})
	e.startWorker()
	e.sim.FailNextLaunches(1)
	if _, err := e.Client.Create(context.Background(), "no-quota", onDemand(1), nil); err != nil {
		t.Fatal(err)
	}
	c := e.WaitFor("no-quota", "Failed", func(c *rh.Cluster) bool { return c.Status.Phase.Final() || c.Status.Phase == rh.PhaseUp })
	if c.Status.Phase != rh.PhaseFailed || !strings.Contains(c.Status.Message, "quota exceeded") || strings.Contains(c.Status.Message, "\x1b") {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
	if n := e.sim.CountRequests("sky.launch"); n != 1 {
		t.Fatalf("sky.launch requests = %d, want 1 (no retry of a quota failure)", n)
	}
}

// Test503StormStillUp: 503s before and during the launch are retried.
func Test503StormStillUp(t *testing.T) {
	e := setup(t, skysim.Options{Nodes: newFakeNodes(), LaunchLatency: 300 * time.Millisecond})
	e.startWorker()
	e.sim.Unavailable503(10)
	if _, err := e.Client.Create(context.Background(), "stormy", onDemand(2), nil); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("stormy", "Provisioning", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseProvisioning })
	e.sim.Unavailable503For(time.Second)
	c := e.WaitFor("stormy", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseUp || len(c.Status.Nodes) != 2 {
		t.Fatalf("status = %s %q, %d nodes", c.Status.Phase, c.Status.Message, len(c.Status.Nodes))
	}
	if n := e.sim.Provisions(); n != 1 {
		t.Fatalf("provisions = %d, want 1", n)
	}
}

// TestTeardownDuringProvisioning: the launch is cancelled and the INIT
// leftover downed; nothing stays in the simulator.
func TestTeardownDuringProvisioning(t *testing.T) {
	nodes := newFakeNodes()
	e := setup(t, skysim.Options{Nodes: nodes, LaunchLatency: 5 * time.Second})
	e.startWorker()
	ctx := context.Background()
	if _, err := e.Client.Create(ctx, "short-lived", onDemand(2), nil); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("short-lived", "Provisioning", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseProvisioning })
	e.TeardownOvertakes("short-lived", 4*time.Second)
	if st := e.sim.ClusterState("short-lived"); st != "" {
		t.Fatalf("SkyPilot still has the cluster: %s", st)
	}
	if nodes.Live("short-lived") != 0 || e.sim.Provisions() != 0 {
		t.Fatalf("machines left: live %d, provisions %d", nodes.Live("short-lived"), e.sim.Provisions())
	}
	if err := e.Client.Delete(ctx, "short-lived", false); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshAfterAutostop: SkyPilot autostops (and downs) the cluster behind
// rh's back; a refresh shows it Terminated.
func TestRefreshAfterAutostop(t *testing.T) {
	nodes := newFakeNodes()
	e := setup(t, skysim.Options{Nodes: nodes, AutostopMinute: 300 * time.Millisecond})
	e.startWorker()
	ctx := context.Background()
	spec := onDemand(1)
	spec.AutostopMins = new(1)
	if _, err := e.Client.Create(ctx, "idle", spec, nil); err != nil {
		t.Fatal(err)
	}
	e.WaitPhase("idle", rh.PhaseUp)
	testkit.Eventually(t, 10*time.Second, "the simulator autostops the cluster", func() bool { return e.sim.ClusterState("idle") == "" })
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := e.Client.Refresh(rctx, "idle")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Phase != rh.PhaseTerminated || c.Status.Message != skyworker.MsgGone || c.Status.Info["skypilot_status"] != "" {
		t.Fatalf("status = %s %q, info %v", c.Status.Phase, c.Status.Message, c.Status.Info)
	}
	if nodes.Live("idle") != 0 {
		t.Fatal("nodes left after autostop")
	}
	if e.Secrets("idle") != nil {
		t.Fatal("key of a vanished cluster still stored")
	}
}

// TestSkyName: rh names that start with a digit get a prefix SkyPilot accepts.
func TestSkyName(t *testing.T) {
	for in, want := range map[string]string{"gpu-a": "gpu-a", "7b-train": "rh-7b-train"} {
		if got := skyworker.SkyName(in); got != want || skypilot.ValidateClusterName(got) != nil {
			t.Errorf("SkyName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResumesLaunchSubmittedButNotRecorded: a worker that died between
// submitting a launch and recording its id left only a pending record; the
// next one finds the launch on the server instead of launching again.
func TestResumesLaunchSubmittedButNotRecorded(t *testing.T) {
	e := setup(t, skysim.Options{Nodes: newFakeNodes(), LaunchLatency: 500 * time.Millisecond})
	e.startWorker()
	ctx := context.Background()
	kv, err := e.NS.JS.KeyValue(ctx, skyworker.BucketRequests)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "launch.orphan", []byte(`{"generation":1,"sky_name":"orphan","state":"pending"}`)); err != nil {
		t.Fatal(err)
	}
	task, err := skypilot.TaskYAML(skypilot.TaskSpec{Name: "orphan", InstanceType: "CPU:2+", Provider: "aws", Region: "us-east-1", AutostopMins: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sky.SubmitLaunch(ctx, skypilot.LaunchRequest{ClusterName: "orphan", TaskYAML: task}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Create(ctx, "orphan", onDemand(1), nil); err != nil {
		t.Fatal(err)
	}
	c := e.WaitFor("orphan", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseUp {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
	if n := e.sim.CountRequests("sky.launch"); n != 1 {
		t.Fatalf("sky.launch requests = %d, want 1", n)
	}
}

// TestUnauthorizedFailsWithFix: a server that wants a token fails the cluster
// with the setting that fixes it, instead of retrying forever.
func TestUnauthorizedFailsWithFix(t *testing.T) {
	e := setup(t, skysim.Options{Nodes: newFakeNodes(), Token: "sky_secret"})
	e.startWorker()
	if _, err := e.Client.Create(context.Background(), "locked-out", onDemand(1), nil); err != nil {
		t.Fatal(err)
	}
	c := e.WaitFor("locked-out", "Failed", func(c *rh.Cluster) bool { return c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseFailed || !strings.Contains(c.Status.Message, skypilot.EnvToken) {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
}
