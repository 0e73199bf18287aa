//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/proctest"
	"github.com/rhq/rh/internal/simnodes"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// The issue's user-visible time limits. They are asserted with slack: this
// machine is shared and loaded, and a failure should mean "slow as before
// the fix" (a 30 s ack wait), not "a busy moment".
const (
	issueTarget = 10 * time.Second
	targetSlack = 2
	// fewSeconds bounds how long one rhcli create may wait while a
	// registry dies ("no client waits more than a few seconds").
	fewSeconds = 10 * time.Second
	// reconcileEvery is serve's default: a faster reconciler's refreshes
	// would adopt a dead worker's launch and hide a slow takeover.
	reconcileEvery = 30 * time.Second
)

var (
	bin        = &proctest.Rhcli{}
	natsServer string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rh-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var version string
	bin.Path, version, err = proctest.BuildRhcli(dir)
	if err == nil {
		// The nats-server of the version rh embeds (go.mod).
		natsServer, err = proctest.GoBuild(dir, "nats-server", "github.com/nats-io/nats-server/v2")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	proctest.RemoveAgents(version)
	os.RemoveAll(dir)
	os.Exit(code)
}

// natsNode is one nats-server process of the cluster.
type natsNode struct {
	name, conf, client, monitor string
	proc                        *proctest.Child
}

// natsCluster is three nats-server processes routed into one JetStream
// cluster, configured from `rhcli nats-config`'s output: rh's accounts,
// per-service users, encryption at rest.
type natsCluster struct {
	t     *testing.T
	dir   string // nats-config's directory: credentials, accounts
	URL   string // every node's client URL, comma-separated
	nodes []*natsNode
}

func startNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, dir: filepath.Join(t.TempDir(), "rh-nats")}
	const n = 3
	routeAddrs := make([]string, n)
	for i := range n {
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i+1), client: testkit.FreeAddr(t), monitor: testkit.FreeAddr(t)})
		routeAddrs[i] = "nats://" + testkit.FreeAddr(t)
	}
	var urls []string
	for i, nd := range c.nodes {
		// nats-config keeps its keys and rewrites nats-server.conf for the
		// listen address and store given: one server file per node.
		bin.NATSConfig(t, c.dir, nd.client, filepath.Join(t.TempDir(), "store"))
		base, err := os.ReadFile(filepath.Join(c.dir, "nats-server.conf"))
		if err != nil {
			t.Fatal(err)
		}
		const defaultHTTP = `http: "127.0.0.1:8222"`
		if !strings.Contains(string(base), defaultHTTP) {
			t.Fatalf("nats-server.conf has no %s line to give each node its own monitor port:\n%s", defaultHTTP, base)
		}
		conf := strings.Replace(string(base), defaultHTTP, fmt.Sprintf("http: %q", nd.monitor), 1)
		var routes []string
		for j, r := range routeAddrs {
			if j != i {
				routes = append(routes, fmt.Sprintf("%q", r))
			}
		}
		conf += fmt.Sprintf("server_name: %q\ncluster {\n  name: \"rh-faults\"\n  listen: %q\n  routes: [%s]\n}\n",
			nd.name, strings.TrimPrefix(routeAddrs[i], "nats://"), strings.Join(routes, ", "))
		nd.conf = filepath.Join(c.dir, nd.name+".conf")
		if err := os.WriteFile(nd.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "nats://"+nd.client)
	}
	c.URL = strings.Join(urls, ",")
	bin.SetCreds(c.URL, filepath.Join(c.dir, "operator.creds"))
	for i := range c.nodes {
		c.start(i)
	}
	c.waitHealthy()
	for _, nd := range c.nodes {
		// waitHealthy passes over stopped nodes (a scenario kills some);
		// at the start every one must run.
		if nd.proc.Exited() {
			t.Fatalf("nats-server %s exited while the cluster formed:\n%s", nd.name, nd.proc.Log.String())
		}
	}
	return c
}

// start runs node i's nats-server (again, on the same store after a kill).
func (c *natsCluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	nd.proc = proctest.Start(c.t, "nats-server "+nd.name, exec.Command(natsServer, "-c", nd.conf), proctest.KillAtCleanup)
}

// kill ends node i with SIGKILL.
func (c *natsCluster) kill(i int) { c.nodes[i].proc.Kill() }

// waitHealthy waits until every running node says JetStream is healthy and
// caught up (its /healthz), as an operator's probe would.
func (c *natsCluster) waitHealthy() {
	c.t.Helper()
	// Every 200 ms, not testkit's 10: each refused probe is a line in the
	// server's log, which a failed test shows.
	var last time.Time
	testkit.WaitErr(c.t, 90*time.Second, "every NATS node healthy", func() error {
		if time.Since(last) < 200*time.Millisecond {
			return errors.New("probing")
		}
		last = time.Now()
		for _, nd := range c.nodes {
			if nd.proc.Exited() {
				continue
			}
			resp, err := http.Get("http://" + nd.monitor + "/healthz")
			if err != nil {
				return fmt.Errorf("%s: %w", nd.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: healthz %s", nd.name, resp.Status)
			}
		}
		return nil
	})
}

// creds is the credentials file of a service user (or "operator").
func (c *natsCluster) creds(name string) string {
	if name == "operator" {
		return filepath.Join(c.dir, "operator.creds")
	}
	return filepath.Join(c.dir, "service-"+name+".creds")
}

// service runs one rh service as its own process with replicas 3.
func (c *natsCluster) service(name string, env ...string) *proctest.Service {
	c.t.Helper()
	args := append(proctest.ServiceArgs(c.dir, name), "--replicas", "3")
	return bin.StartService(c.t, c.URL, name, proctest.ServiceOptions{Args: args, Env: env, ReconcileEvery: reconcileEvery})
}

// connect opens a NATS connection as service user name (for what users
// cannot do: publish malformed events, read streams, move leaders).
func (c *natsCluster) connect(name string) (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := natsutil.Connect(ctx, c.URL, "rh-faults-"+name, c.creds(name))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return nc, js
}

// leader names the node leading stream (a KV bucket's is "KV_<bucket>").
func leader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("%s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}

// moveLeader asks stream's leader to step down in favour of node.
func moveLeader(ctx context.Context, nc *nats.Conn, stream, node string) error {
	req, _ := json.Marshal(map[string]any{"placement": map[string]any{"preferred": node}})
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
	if err != nil {
		return err
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	if !resp.Success {
		return fmt.Errorf("step down %s: %+v", stream, resp.Error)
	}
	return nil
}

// skyAPI is the SkyPilot simulator, run in the test process so the test can
// count launches across skyworker processes; its machines are sshd nodes.
type skyAPI struct {
	*skysim.Server
	URL string
}

func startSky(t *testing.T) *skyAPI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Its log (requests, launches, nodes) is shown when the test fails.
	var logs testkit.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	nodes := simnodes.New(simnodes.Options{Logger: log})
	sim := skysim.New(skysim.Options{Nodes: nodes, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := nodes.Close(); err != nil {
			t.Errorf("stop the simulator's nodes: %v", err)
		}
		if t.Failed() {
			t.Logf("SkyPilot simulator log:\n%s", logs.String())
		}
	})
	return &skyAPI{Server: sim, URL: "http://" + ln.Addr().String()}
}

// env points a skyworker at the simulator.
func (s *skyAPI) env() string { return skypilot.EnvEndpoint + "=" + s.URL }

// onDemand are the flags of a one-node on-demand cluster.
var onDemand = []string{"--instance-type", "m5.xlarge", "--provider", "aws", "--region", "us-east-1"}

// getCluster reads a record through rhcli.
func getCluster(t *testing.T, url, name string) (rh.Cluster, error) {
	t.Helper()
	code, out, stderr := bin.Run(t, url, "cluster", "get", name, "-o", "json")
	var c rh.Cluster
	if code != 0 {
		return c, fmt.Errorf("get %s: exit %d: %s", name, code, strings.TrimSpace(stderr))
	}
	return c, json.Unmarshal([]byte(out), &c)
}

// waitPhases waits until every named cluster is in phase want.
func waitPhases(t *testing.T, url string, timeout time.Duration, want rh.Phase, names ...string) {
	t.Helper()
	pending := slices.Clone(names)
	testkit.WaitErr(t, timeout, fmt.Sprintf("%d clusters to be %s", len(names), want), func() error {
		code, out, stderr := bin.Run(t, url, "cluster", "list", "-o", "json")
		if code != 0 {
			return fmt.Errorf("list: exit %d: %s", code, stderr)
		}
		var list []rh.ClusterSummary
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		phase := map[string]rh.ClusterSummary{}
		for _, s := range list {
			phase[s.Name] = s
		}
		pending = slices.DeleteFunc(pending, func(n string) bool { return phase[n].Phase == want })
		if len(pending) > 0 {
			s := phase[pending[0]]
			return fmt.Errorf("%d not yet, e.g. %s: %q %q", len(pending), pending[0], s.Phase, s.Message)
		}
		return nil
	})
}

// history reads a cluster's transitions through rhcli.
func history(t *testing.T, url, name string) []rh.Transition {
	t.Helper()
	h, err := readHistory(t, url, name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func readHistory(t *testing.T, url, name string) ([]rh.Transition, error) {
	t.Helper()
	code, out, stderr := bin.Run(t, url, "cluster", "events", name, "-o", "json")
	if code != 0 {
		return nil, fmt.Errorf("events %s: exit %d: %s", name, code, strings.TrimSpace(stderr))
	}
	var h []rh.Transition
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		return nil, fmt.Errorf("events %s: %w", name, err)
	}
	return h, nil
}

// checkHistory checks that a cluster's history is whole: it starts at
// Pending, each transition starts where the last ended, and it reached Up
// exactly once.
func checkHistory(t *testing.T, name string, h []rh.Transition) {
	t.Helper()
	if len(h) == 0 || h[0].To != rh.PhasePending {
		t.Errorf("%s: history does not start at Pending: %+v", name, h)
		return
	}
	ups := 0
	for i, tr := range h {
		if i > 0 && tr.From != h[i-1].To {
			t.Errorf("%s: transition %d starts at %q but the one before ended at %q: %+v", name, i, tr.From, h[i-1].To, h)
		}
		if tr.To == rh.PhaseUp && tr.From != rh.PhaseUp {
			ups++
		}
	}
	if ups != 1 {
		t.Errorf("%s: reached Up %d times, want once: %+v", name, ups, h)
	}
}

// withinTarget fails the test when took exceeds the issue's target times
// the slack, and logs the measurement either way.
func withinTarget(t *testing.T, what string, took time.Duration) {
	t.Helper()
	t.Logf("%s: %s (issue target %s)", what, took.Round(time.Millisecond), issueTarget)
	if took > issueTarget*targetSlack {
		t.Errorf("%s took %s; the issue's target is %s (asserted with %dx slack)", what, took.Round(time.Millisecond), issueTarget, targetSlack)
	}
}
