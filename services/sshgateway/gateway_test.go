package sshgateway_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	rh "github.com/rhq/rh"

	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
	"github.com/rhq/rh/services/sshgateway"
)

type env struct {
	ns   *natstest.Server
	reg  *registry.Service
	gw   *sshgateway.Service
	cl   *client.Client
	logs *testkit.SyncBuffer
	prom *prometheus.Registry
	log  *slog.Logger
	// secrets must never show up in the logs.
	secrets []string
}

// clientTimeout bounds each request of the tests' clients: generous, as the
// tests run in parallel on a machine that may be busy, and a request can
// wait on an agent's upload.
const clientTimeout = time.Minute

// start runs NATS, the registry and the gateway in-process, logging to a
// buffer that is checked for secrets when the test ends.
func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, nil)
}

// gatewayConfig is the tests' gateway configuration: logging to log, with
// this test binary as the node agent. The timeouts are generous: the tests
// run in parallel on a machine that may be busy, and none of them waits for
// a timeout to pass (a node that is down refuses at once).
func gatewayConfig(t *testing.T, log *slog.Logger, prom *prometheus.Registry) sshgateway.Config {
	return sshgateway.Config{
		Logger: log, Registry: prom, ConnectTimeout: 20 * time.Second, ProbeTimeout: 15 * time.Second,
		HomeDir: t.TempDir(), Worker: worker.Config{RetryBase: 50 * time.Millisecond},
		AgentVersion: testAgentVersion, AgentBinaries: agentBinaries(), AgentRestartBackoff: 50 * time.Millisecond,
	}
}

// startWith is start with the gateway's configuration adjusted by adjust.
func startWith(t *testing.T, adjust func(*sshgateway.Config)) *env {
	t.Helper()
	ns := natstest.Start(t)
	ctx := context.Background()
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg, err := registry.Start(ctx, ns.NC, registry.Config{Logger: log, ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	prom := prometheus.NewRegistry()
	cfg := gatewayConfig(t, log, prom)
	if adjust != nil {
		adjust(&cfg)
	}
	gw, err := sshgateway.Start(ctx, ns.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	cl, err := client.New(ns.NC, clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ns: ns, reg: reg, gw: gw, cl: cl, logs: logs, prom: prom, log: log}
	t.Cleanup(func() {
		out := logs.String()
		if t.Failed() && os.Getenv("RH_TEST_LOGS") != "" {
			t.Log(out)
		}
		if !strings.Contains(out, "service=sshgateway") {
			t.Errorf("the gateway logged nothing: the secret check would prove nothing")
		}
		for _, s := range e.secrets {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("the logs contain a secret")
			}
		}
	})
	return e
}

func userKey(t *testing.T, kt sshnode.KeyType) *sshnode.UserKey {
	t.Helper()
	k, err := sshnode.GenerateUserKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyNodes starts n sshd nodes that accept key.
func keyNodes(t *testing.T, n int, key *sshnode.UserKey) []*sshnode.Node {
	t.Helper()
	nodes := make([]*sshnode.Node, n)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i] = sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}}) })
	}
	wg.Wait()
	return nodes
}

// byoSpec describes a cluster of nodes. A BYO cluster has one SSH port;
// test nodes each listen on their own, so a multi-node cluster reaches them
// through a proxy command routing by address (%h), as a bastion would: the
// test binary itself, in netcat mode (see TestMain).
func byoSpec(nodes ...*sshnode.Node) rh.Spec {
	ips := make([]string, len(nodes))
	for i, n := range nodes {
		ips[i] = n.Addr()
	}
	b := &rh.BYOSpec{IPs: ips, SSHUser: nodes[0].User(), SSHPort: nodes[0].Port()}
	if len(nodes) > 1 {
		routes := make([]string, len(nodes))
		for i, n := range nodes {
			routes[i] = n.Addr() + "=" + strconv.Itoa(n.Port())
		}
		self, _ := os.Executable()
		b.ProxyCommand = "RH_TEST_NC=" + strings.Join(routes, ",") + " exec " + self + " %h"
	}
	return rh.Spec{BYO: b}
}

func (e *env) create(t *testing.T, name string, spec rh.Spec, sec *rh.Secrets) {
	t.Helper()
	if sec != nil {
		e.secrets = append(e.secrets, sec.SSHPrivateKey, sec.Password)
	}
	if _, err := e.cl.Create(context.Background(), name, spec, sec); err != nil {
		t.Fatal(err)
	}
}

// waitPhase waits until the cluster reaches phase (or fails the test).
func (e *env) waitPhase(t *testing.T, name string, phase rh.Phase) *rh.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.cl.WaitFor(ctx, name, func(c *rh.Cluster) bool { return c.Status.Phase == phase })
	if err != nil {
		t.Fatalf("waiting for %s to be %s: %v (last: %+v)", name, phase, err, c)
	}
	return c
}

// refresh asks for a refresh and returns the record with its report.
func (e *env) refresh(t *testing.T, name string) *rh.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.cl.Refresh(ctx, name)
	if err != nil {
		t.Fatalf("refresh %s: %v", name, err)
	}
	return c
}

func TestOneNodeKeyAuthUpWithFacts(t *testing.T) {
	t.Parallel()
	e := start(t)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	e.create(t, "one", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	c := e.waitPhase(t, "one", rh.PhaseUp)
	if len(c.Status.Nodes) != 1 {
		t.Fatalf("nodes = %+v", c.Status.Nodes)
	}
	nd := c.Status.Nodes[0]
	if !nd.Reachable || nd.Address != n.Addr() || nd.Port != n.Port() {
		t.Fatalf("node = %+v", nd)
	}
	if f := nd.Facts; f == nil || f.CPUs < 1 || f.MemoryBytes == 0 || f.Arch == "" || f.Kernel == "" || f.OS == "" {
		t.Fatalf("facts = %+v", nd.Facts)
	}
	if want := fingerprint(n); nd.HostKey != want {
		t.Fatalf("host key = %q, want %q", nd.HostKey, want)
	}
	if c.Status.Owner == "" || c.Status.Message != "1/1 nodes reachable" {
		t.Fatalf("status = %+v", c.Status)
	}
	res, err := e.cl.Run(context.Background(), "one", "echo hello; echo oops >&2; exit 3", client.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Stdout != "hello\n" || res[0].Stderr != "oops\n" || res[0].ExitCode != 3 {
		t.Fatalf("run = %+v", res)
	}

	if got := metricValue(t, e.prom, "rh_ssh_commands_total", "nonzero"); got != 1 {
		t.Fatalf("commands_total{nonzero} = %v", got)
	}
	if got := metricValue(t, e.prom, "rh_ssh_bytes_total", "stdout"); got != 6 {
		t.Fatalf("bytes_total{stdout} = %v", got)
	}

	// Teardown closes connections and never touches the machine.
	if _, err := e.cl.Teardown(context.Background(), "one"); err != nil {
		t.Fatal(err)
	}
	c = e.waitPhase(t, "one", rh.PhaseTerminated)
	if n.Pid() == 0 {
		t.Fatal("the node was stopped by teardown")
	}
	if _, err := e.cl.Run(context.Background(), "one", "true", client.RunOptions{}); !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("run on a terminated cluster: %v, want conflict", err)
	}
}

func TestPasswordAuth(t *testing.T) {
	t.Parallel()
	e := start(t)
	n := sshnode.StartT(t, sshnode.Options{Password: sshnode.TestPassword})
	e.create(t, "pw", byoSpec(n), &rh.Secrets{Password: n.Password()})
	e.waitPhase(t, "pw", rh.PhaseUp)
	res, err := e.cl.Run(context.Background(), "pw", "id -un", client.RunOptions{})
	if err != nil || len(res) != 1 || strings.TrimSpace(res[0].Stdout) != sshnode.TestUser {
		t.Fatalf("run = %+v, %v", res, err)
	}
}

func TestWrongKeyFailsWithReason(t *testing.T) {
	t.Parallel()
	e := start(t)
	n := keyNodes(t, 1, userKey(t, sshnode.KeyEd25519))[0]
	other := userKey(t, sshnode.KeyRSA)
	e.create(t, "wrong", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(other.PrivatePEM)})
	c := e.waitPhase(t, "wrong", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "authentication refused") {
		t.Fatalf("message = %q, want it to say authentication was refused", c.Status.Message)
	}
}

func TestConnectionRefusedFails(t *testing.T) {
	t.Parallel()
	e := start(t)
	key := userKey(t, sshnode.KeyECDSA)
	n := keyNodes(t, 1, key)[0]
	n.Kill()
	e.create(t, "refused", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	c := e.waitPhase(t, "refused", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "connection refused") {
		t.Fatalf("message = %q", c.Status.Message)
	}
	e.create(t, "nodns", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"no-such-host.invalid"}}}, &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	c = e.waitPhase(t, "nodns", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "cannot resolve") {
		t.Fatalf("message = %q", c.Status.Message)
	}
}

func TestChangedHostKeyIsRefusedUntilTrusted(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	e.create(t, "hk", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	first := e.waitPhase(t, "hk", rh.PhaseUp).Status.Nodes[0].HostKey

	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := n.RotateHostKey(rctx); err != nil {
		t.Fatal(err)
	}
	c := e.refresh(t, "hk")
	if c.Status.Phase != rh.PhaseDegraded || !strings.Contains(c.Status.Message, "host key for") || !strings.Contains(c.Status.Message, "changed") {
		t.Fatalf("after rotation: %s %q", c.Status.Phase, c.Status.Message)
	}
	res, err := e.cl.Run(ctx, "hk", "true", client.RunOptions{})
	if err != nil || res[0].ExitCode != -1 || !strings.Contains(res[0].Error, "changed") {
		t.Fatalf("run against a changed key = %+v, %v", res, err)
	}
	// A new up refuses too.
	if _, err := e.cl.Teardown(ctx, "hk"); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(t, "hk", rh.PhaseTerminated)
	if _, err := e.cl.Up(ctx, "hk"); err != nil {
		t.Fatal(err)
	}
	c = e.waitPhase(t, "hk", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "changed") || !strings.Contains(c.Status.Message, "rhcli cluster trust hk") {
		t.Fatalf("failed message = %q", c.Status.Message)
	}
	forgot, err := e.cl.Trust(ctx, "hk")
	if err != nil || len(forgot) != 1 || forgot[0] != n.HostPort() {
		t.Fatalf("trust = %v, %v", forgot, err)
	}
	if _, err := e.cl.Up(ctx, "hk"); err != nil {
		t.Fatal(err)
	}
	c = e.waitPhase(t, "hk", rh.PhaseUp)
	if got := c.Status.Nodes[0].HostKey; got == first || got != fingerprint(n) {
		t.Fatalf("host key after trust = %q (first %q, now %q)", got, first, fingerprint(n))
	}
}

// metricValue is the value of counter name with the label value lv.
func metricValue(t *testing.T, reg *prometheus.Registry, name, lv string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == lv {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, lv)
	return 0
}

// A machine still booting (sshd not yet listening) is not a failed cluster:
// the create says it is retrying, and the cluster comes Up once the node
// answers.
func TestCreateRetriesANodeThatIsNotUpYet(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *sshgateway.Config) { c.Worker.RetryBase = 300 * time.Millisecond })
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	n.Kill()
	e.create(t, "booting", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.cl.WaitFor(ctx, "booting", func(c *rh.Cluster) bool {
		return c.Status.Phase == rh.PhaseProvisioning && strings.Contains(c.Status.Message, "retrying")
	})
	if err != nil {
		t.Fatalf("the create never said it was retrying: %v (last: %+v)", err, c)
	}
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c := e.waitPhase(t, "booting", rh.PhaseUp); !c.Status.Nodes[0].Reachable {
		t.Fatalf("up but node unreachable: %+v", c.Status.Nodes[0])
	}
}

// A node that lets the gateway in but does not answer commands in time (a
// GPU box under load) is reachable and slow, not down, and its cluster is
// Up: slow is not dead.
func TestSlowNodeIsReachableNotDown(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *sshgateway.Config) { c.DisableAgent = true }) // the usual probe time: a loaded machine still logs in within it
	key := userKey(t, sshnode.KeyEd25519)
	// Every session hangs; sshd itself (login, keepalives) answers.
	n := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}, ExtraConfig: []string{"ForceCommand sleep 600"}})
	e.create(t, "busy", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	c := e.waitPhase(t, "busy", rh.PhaseUp)
	if nd := c.Status.Nodes[0]; !nd.Reachable || !strings.Contains(nd.Message, "slow") {
		t.Fatalf("busy node: reachable %v, message %q; want reachable and slow", nd.Reachable, nd.Message)
	}
}

// The SDK runs Python and argv commands with every word as typed, as rhcli does.
func TestSDKRunPythonAndRunArgvKeepWords(t *testing.T) {
	t.Parallel()
	e := start(t)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	e.create(t, "py", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, "py", rh.PhaseUp)
	ctx := context.Background()
	res, err := e.cl.RunPython(ctx, "py", "import sys; print('|'.join(sys.argv[1:]))", []string{"a b", "$HOME", "*"}, client.RunOptions{Capture: true})
	if err != nil || len(res) != 1 || res[0].ExitCode != 0 || res[0].Stdout != "a b|$HOME|*\n" {
		t.Fatalf("RunPython = %+v, %v", res, err)
	}
	res, err = e.cl.RunArgv(ctx, "py", []string{"printf", "%s|", "it's", "~", ""}, client.RunOptions{Capture: true})
	if err != nil || len(res) != 1 || res[0].Stdout != "it's|~||" {
		t.Fatalf("RunArgv = %+v, %v", res, err)
	}
}

// Twenty clusters created at once on the same two machines share their
// connections and agents: every one comes Up, none fails for the crowd.
func TestManyClustersAtOnceOnTheSameNodes(t *testing.T) {
	t.Parallel()
	e := start(t)
	key := userKey(t, sshnode.KeyEd25519)
	nodes := keyNodes(t, 2, key)
	sec := &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}
	e.secrets = append(e.secrets, sec.SSHPrivateKey)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = e.cl.Create(context.Background(), fmt.Sprintf("crowd-%d", i), byoSpec(nodes...), sec)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("crowd-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		c, err := e.cl.WaitFor(ctx, name, func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp || c.Status.Phase.Final() })
		cancel()
		if err != nil || c.Status.Phase != rh.PhaseUp {
			t.Fatalf("%s: %v %+v", name, err, c.Status)
		}
	}
}
