//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/proctest"
	"github.com/rhq/rh/internal/serve"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
)

// createResult is one rhcli cluster create as a user ran it.
type createResult struct {
	name   string
	code   int
	stderr string
	took   time.Duration
}

// createAsync runs `rhcli cluster create name args...` in the background
// and delivers how it went on out.
func createAsync(url, name string, args []string, out chan<- createResult) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := bin.Command(ctx, url, append([]string{"cluster", "create", name}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		r := createResult{name: name, stderr: stderr.String(), took: time.Since(start)}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code, r.stderr = -1, err.Error()
		}
		out <- r
	}()
}

// 1. A worker killed with -9 mid-launch: its replacement brings the cluster
// Up within the 10 s, and SkyPilot launched once.
func TestWorkerKilledMidLaunch(t *testing.T) {
	c := startNATSCluster(t)
	sky := startSky(t)
	c.service("registry")
	worker := c.service("skyworker", sky.env())
	// Long enough that the kill lands while SkyPilot is still provisioning.
	sky.SetLaunchLatency(4 * time.Second)

	if code, _, stderr := bin.Run(t, c.URL, append([]string{"cluster", "create", "mid"}, onDemand...)...); code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	running := func() bool {
		return slices.ContainsFunc(sky.Requests(), func(r skysim.LoggedRequest) bool { return r.Name == "sky.launch" && r.Status == "RUNNING" })
	}
	testkit.Eventually(t, 60*time.Second, "the launch to be running at SkyPilot", running)
	worker.Kill()
	if !running() {
		t.Fatal("the launch finished before the worker was killed: not a mid-launch kill (raise the launch latency)")
	}

	started := time.Now()
	c.service("skyworker", sky.env())
	testkit.WaitErr(t, 2*time.Minute, "mid to be Up after the replacement started", func() error {
		cl, err := getCluster(t, c.URL, "mid")
		if err != nil {
			return err
		}
		if cl.Status.Phase != rh.PhaseUp {
			return fmt.Errorf("%s: %s", cl.Status.Phase, cl.Status.Message)
		}
		return nil
	})
	withinTarget(t, "Up after the replacement worker started", time.Since(started))
	if t.Failed() {
		// Who was late: the launch, the worker's report or the registry.
		t.Logf("the replacement started at %s; mid's history: %+v", started.UTC().Format(time.RFC3339Nano), history(t, c.URL, "mid"))
	}
	if n := sky.Provisions(); n != 1 {
		t.Errorf("SkyPilot provisioned %d times, want exactly once (launch requests: %d)", n, sky.CountRequests("sky.launch"))
	}
	checkHistory(t, "mid", history(t, c.URL, "mid"))
}

// 2. The registry killed with -9 during a burst of 20 creates, another
// registry running and a replacement started: every create is answered
// (retried if need be) without a long wait, 20 clusters come Up, each
// launched once, with whole histories.
func TestRegistryKilledDuringBurst(t *testing.T) {
	c := startNATSCluster(t)
	sky := startSky(t)
	doomed := c.service("registry")
	c.service("registry")
	c.service("skyworker", sky.env())

	const n = 20
	results := make(chan createResult, n)
	var names []string
	for i := range n / 2 {
		names = append(names, fmt.Sprintf("burst-%02d", i))
		createAsync(c.URL, names[i], onDemand, results)
	}
	var got []createResult
	got = append(got, <-results) // the burst is under way: kill mid-stream
	doomed.Kill()
	for i := n / 2; i < n; i++ {
		names = append(names, fmt.Sprintf("burst-%02d", i))
		createAsync(c.URL, names[i], onDemand, results)
	}
	c.service("registry")
	for len(got) < n {
		got = append(got, <-results)
	}
	slices.SortFunc(got, func(a, b createResult) int { return strings.Compare(a.name, b.name) })
	var created []string
	for _, r := range got {
		t.Logf("create %s: exit %d in %s", r.name, r.code, r.took.Round(time.Millisecond))
		if r.code != 0 {
			t.Errorf("create %s: exit %d: %s", r.name, r.code, strings.TrimSpace(r.stderr))
		} else {
			created = append(created, r.name)
		}
		if r.took > fewSeconds*targetSlack {
			t.Errorf("create %s kept its user waiting %s (a few seconds: %s, asserted with %dx slack)", r.name, r.took.Round(time.Millisecond), fewSeconds, targetSlack)
		}
	}
	waitPhases(t, c.URL, 3*time.Minute, rh.PhaseUp, created...)
	code, out, stderr := bin.Run(t, c.URL, "cluster", "list", "-o", "json")
	var list []rh.ClusterSummary
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("list: exit %d %v: %s", code, err, stderr)
	}
	if len(list) != n {
		t.Errorf("list shows %d clusters, want %d", len(list), n)
	}
	if p := sky.Provisions(); p != n {
		t.Errorf("SkyPilot provisioned %d times for %d clusters", p, n)
	}
	for _, name := range created {
		checkHistory(t, name, history(t, c.URL, name))
	}
}

// 3. The NATS node leading RH_EVENTS and rh_clusters killed with -9: creates
// work again within the 10 s, and when the node returns nothing is
// lost and every replica catches up.
func TestNATSLeaderKilled(t *testing.T) {
	c := startNATSCluster(t)
	sky := startSky(t)
	c.service("registry")
	c.service("skyworker", sky.env())
	before := []string{"before-1", "before-2", "before-3"}
	for _, name := range before {
		if code, _, stderr := bin.Run(t, c.URL, append([]string{"cluster", "create", name}, onDemand...)...); code != 0 {
			t.Fatalf("create %s: exit %d: %s", name, code, stderr)
		}
	}
	waitPhases(t, c.URL, 2*time.Minute, rh.PhaseUp, before...)

	// One node leads both: move rh_clusters' leader to RH_EVENTS' leader.
	nc, js := c.connect("registry")
	// Each JetStream request gets its own deadline: one asked while a stream
	// elects its leader gets no answer at all.
	var lead string
	testkit.WaitErr(t, time.Minute, events.StreamEvents+"'s leader", func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lead, err = leader(ctx, js, events.StreamEvents)
		return err
	})
	kv := "KV_" + events.BucketClusters
	testkit.WaitErr(t, 2*time.Minute, kv+"'s leader to move to "+lead, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l, err := leader(ctx, js, kv)
		if err != nil || l == lead {
			return err
		}
		if err := moveLeader(ctx, nc, kv, lead); err != nil {
			return err
		}
		return fmt.Errorf("led by %s", l)
	})
	idx := slices.IndexFunc(c.nodes, func(nd *natsNode) bool { return nd.name == lead })
	if idx < 0 {
		t.Fatalf("leader %q is none of the cluster's nodes", lead)
	}

	t.Logf("killing %s, which leads %s and %s", lead, events.StreamEvents, kv)
	c.kill(idx)
	killed := time.Now()
	var answered, unanswered []string
	for i := 0; len(answered) < 3; i++ {
		if time.Since(killed) > 2*time.Minute {
			t.Fatalf("no create succeeded in 2 minutes after the leader was killed; tried %v", unanswered)
		}
		name := fmt.Sprintf("after-%d", i)
		actx, acancel := context.WithTimeout(context.Background(), 15*time.Second)
		code, _, stderr := bin.RunContext(actx, t, c.URL, append([]string{"cluster", "create", name}, onDemand...)...)
		acancel()
		if code != 0 {
			t.Logf("create %s %s after the kill: exit %d: %s", name, time.Since(killed).Round(time.Millisecond), code, strings.TrimSpace(stderr))
			unanswered = append(unanswered, name)
			continue
		}
		if len(answered) == 0 {
			withinTarget(t, "first create answered after the leading NATS node was killed", time.Since(killed))
		}
		answered = append(answered, name)
	}
	// Generous: after a failover the clusters' intents may wait for the
	// registry's next reconcile (serve's default 30 s) on a busy machine.
	waitPhases(t, c.URL, 4*time.Minute, rh.PhaseUp, answered...)
	t.Logf("the creates answered after the kill Up %s after it", time.Since(killed).Round(time.Millisecond))

	// The node returns on its store: it catches up, and nothing is lost.
	c.start(idx)
	c.waitHealthy()
	testkit.WaitErr(t, 4*time.Minute, "every stream with 3 replicas, none behind", func() error {
		code, out, stderr := bin.Run(t, c.URL, "serve", "--check", "--nats", c.URL, "--creds", c.creds("registry"), "-o", "json")
		var hs []serve.StreamHealth
		if err := json.Unmarshal([]byte(out), &hs); code != 0 || err != nil {
			return fmt.Errorf("serve --check: exit %d %v: %s", code, err, stderr)
		}
		for _, h := range hs {
			if h.Replicas != 3 || len(h.Lagging) > 0 || h.Leader == "" {
				return fmt.Errorf("%s: %d replicas, leader %q, behind: %v", h.Name, h.Replicas, h.Leader, h.Lagging)
			}
		}
		return nil
	})
	// A create the client gave up on may still have landed: if so it must
	// come Up too, not linger half-made.
	for _, name := range unanswered {
		if _, err := getCluster(t, c.URL, name); err == nil {
			answered = append(answered, name)
		}
	}
	all := append(before, answered...)
	waitPhases(t, c.URL, 2*time.Minute, rh.PhaseUp, all...)
	for _, name := range all {
		checkHistory(t, name, history(t, c.URL, name))
	}
	if p := sky.Provisions(); p != len(all) {
		t.Errorf("SkyPilot provisioned %d times for %d clusters", p, len(all))
	}
}

// 4. The whole NATS cluster killed and restarted on its store: every record
// and history is as it was, and the services, never restarted, work again.
func TestWholeNATSRestarted(t *testing.T) {
	c := startNATSCluster(t)
	sky := startSky(t)
	node, byo := byoNodes(t, 1)
	services := []*proctest.Service{
		c.service("registry"), c.service("sshgateway"), c.service("skyworker", sky.env()), c.service("sagemakerworker"),
	}
	clusters := map[string][]string{"od-1": onDemand, "od-2": onDemand, "byo-1": byo(node...)}
	var names []string
	for name, args := range clusters {
		names = append(names, name)
		if code, _, stderr := bin.Run(t, c.URL, append([]string{"cluster", "create", name}, args...)...); code != 0 {
			t.Fatalf("create %s: exit %d: %s", name, code, stderr)
		}
	}
	waitPhases(t, c.URL, 2*time.Minute, rh.PhaseUp, names...)
	before := map[string][]rh.Transition{}
	for _, name := range names {
		before[name] = history(t, c.URL, name)
	}

	for i := range c.nodes {
		c.kill(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.waitHealthy()
	restarted := time.Now()

	waitPhases(t, c.URL, 4*time.Minute, rh.PhaseUp, names...)
	t.Logf("records readable and Up %s after the cluster was healthy again", time.Since(restarted).Round(time.Millisecond))
	for _, name := range names {
		// The registry may answer "internal error" for a moment after the
		// servers say they are healthy; the history must come back whole.
		var h []rh.Transition
		testkit.WaitErr(t, time.Minute, name+"'s history readable", func() (err error) {
			h, err = readHistory(t, c.URL, name)
			if err != nil {
				t.Logf("after the restart: %v", err)
			}
			return err
		})
		if len(h) < len(before[name]) || !slices.EqualFunc(before[name], h[:len(before[name])], sameTransition) {
			t.Errorf("%s: history changed across the restart:\nbefore %+v\nafter  %+v", name, before[name], h)
		}
	}
	for _, s := range services {
		if s.Exited() {
			t.Fatalf("%s exited when NATS restarted:\n%s", s.Name, s.Log.String())
		}
		testkit.Eventually(t, time.Minute, s.Name+" ready again", s.Ready)
		// An operator can follow it: each service said it lost NATS and got it back.
		testkit.Eventually(t, time.Minute, s.Name+" to log the disconnect and the reconnect", func() bool {
			log := s.Log.String()
			return strings.Contains(log, "NATS disconnected") && strings.Contains(log, "NATS reconnected")
		})
	}
	// Every service works without a restart: new clusters of both kinds come
	// Up and run commands.
	after := map[string][]string{"od-after": onDemand, "byo-after": byo(node...)}
	for name, args := range after {
		if code, _, stderr := bin.Run(t, c.URL, append([]string{"cluster", "create", name}, args...)...); code != 0 {
			t.Fatalf("create %s after the restart: exit %d: %s", name, code, stderr)
		}
	}
	created := time.Now()
	waitPhases(t, c.URL, 4*time.Minute, rh.PhaseUp, "od-after", "byo-after")
	t.Logf("clusters created after the restart Up in %s (%s after the cluster was healthy again)",
		time.Since(created).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	if code, out, stderr := bin.Run(t, c.URL, "run", "byo-after", "--", "echo", "after-restart"); code != 0 || out != "after-restart\n" {
		t.Fatalf("run after the restart: exit %d %q %s", code, out, stderr)
	}
}

func sameTransition(a, b rh.Transition) bool {
	return a.At.Equal(b.At) && a.Generation == b.Generation && a.From == b.From && a.To == b.To && a.Message == b.Message && a.Source == b.Source
}

// 5. Malformed events reach the dead-letter stream with the reason, and every
// service that consumed one says so in its log.
func TestMalformedEventsAreDeadLettered(t *testing.T) {
	c := startNATSCluster(t)
	services := map[string]*proctest.Service{}
	for _, name := range []string{"registry", "sshgateway", "skyworker", "sagemakerworker"} {
		services[name] = c.service(name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The registry publishes intents; each worker gets one it cannot decode.
	_, regJS := c.connect("registry")
	consumedBy := map[string]string{}
	for kind, svc := range map[rh.Kind]string{rh.KindOnDemand: "skyworker", rh.KindSageMaker: "sagemakerworker", rh.KindBYO: "sshgateway"} {
		subj := events.IntentSubject(events.OpCreate, kind)
		if _, err := regJS.Publish(ctx, subj, []byte("not an event {")); err != nil {
			t.Fatalf("publish to %s: %v", subj, err)
		}
		consumedBy[subj] = svc
	}
	// A worker reports state; the registry gets a report it cannot decode.
	_, skyJS := c.connect("skyworker")
	stateSubj := "rh.cluster.state.ondemand.garbled"
	if _, err := skyJS.Publish(ctx, stateSubj, []byte(`{"specversion":`)); err != nil {
		t.Fatalf("publish to %s: %v", stateSubj, err)
	}
	consumedBy[stateSubj] = "registry"

	for subj, svc := range consumedBy {
		s := services[svc]
		testkit.WaitErr(t, time.Minute, svc+" to log the dead letter of "+subj, func() error {
			for _, line := range strings.Split(s.Log.String(), "\n") {
				if strings.Contains(line, "dead-letter") && strings.Contains(line, subj) && strings.Contains(line, "reason=") {
					return nil
				}
			}
			return errors.New("no log line names the dead letter, its subject and reason")
		})
	}
	// Each is in RH_DLQ with its reason (read as the registry, which owns it).
	stream, err := regJS.Stream(ctx, events.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitErr(t, time.Minute, "a dead letter with a reason for every malformed event", func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		seen := map[string]string{}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil {
				return err
			}
			seen[m.Header.Get(events.HeaderDLQSubject)] = m.Header.Get(events.HeaderDLQReason)
		}
		for subj := range consumedBy {
			if seen[subj] == "" {
				return fmt.Errorf("no dead letter with a reason for %s (have %v)", subj, seen)
			}
		}
		if len(seen) != len(consumedBy) {
			return fmt.Errorf("dead letters %v, want one for each of %d subjects", seen, len(consumedBy))
		}
		return nil
	})
}

// byoNodes starts n sshd nodes on one port that the plain user
// sshnode.TestUser (shell /bin/sh, no heavy rc files) logs in to with a
// fresh key, and returns their addresses and the create flags for them.
func byoNodes(t *testing.T, n int) ([]string, func(addrs ...string) []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sshnode.EnsureUser(ctx, sshnode.TestUser, sshnode.TestPassword); err != nil {
		t.Fatal(err)
	}
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(keyPath, key.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := sshnode.Options{User: sshnode.TestUser, AuthorizedKeys: []string{key.AuthorizedKey}}
	first := sshnode.StartT(t, opts)
	opts.Port = first.Port() // a cluster's machines share port 22
	nodes := make([]*sshnode.Node, n)
	nodes[0] = first
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { nodes[i], errs[i] = sshnode.Start(ctx, opts) })
	}
	wg.Wait()
	for _, nd := range nodes[1:] {
		if nd != nil {
			t.Cleanup(func() { _ = nd.Close() })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start %d nodes: %v", n, err)
	}
	addrs := make([]string, n)
	for i, nd := range nodes {
		addrs[i] = nd.Addr()
	}
	flags := func(addrs ...string) []string {
		return []string{"--ips", strings.Join(addrs, ","), "--ssh-port", strconv.Itoa(first.Port()), "--ssh-user", sshnode.TestUser, "--ssh-key", keyPath}
	}
	return addrs, flags
}

// 6a. Twenty BYO clusters created at once on the same two nodes all come Up.
func TestManyClustersOnTwoNodes(t *testing.T) {
	c := startNATSCluster(t)
	nodes, byo := byoNodes(t, 2)
	c.service("registry")
	c.service("sshgateway")
	const n = 20
	results := make(chan createResult, n)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("shared-%02d", i))
		createAsync(c.URL, names[i], byo(nodes...), results)
	}
	for range n {
		if r := <-results; r.code != 0 {
			t.Errorf("create %s: exit %d: %s", r.name, r.code, strings.TrimSpace(r.stderr))
		}
	}
	waitPhases(t, c.URL, 5*time.Minute, rh.PhaseUp, names...)
	for _, name := range names {
		cl, err := getCluster(t, c.URL, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range cl.Status.Nodes {
			if !nd.Reachable {
				t.Errorf("%s: node %s not reachable: %+v", name, nd.Address, nd)
			}
		}
	}
}

// 6b. One cluster of 64 nodes on this small machine comes Up, every node
// reachable, and a command runs on all of them.
func TestSixtyFourNodeCluster(t *testing.T) {
	c := startNATSCluster(t)
	const n = 64
	nodes, byo := byoNodes(t, n)
	c.service("registry")
	c.service("sshgateway")
	if code, _, stderr := bin.Run(t, c.URL, append([]string{"cluster", "create", "wide"}, byo(nodes...)...)...); code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	waitPhases(t, c.URL, 5*time.Minute, rh.PhaseUp, "wide")
	cl, err := getCluster(t, c.URL, "wide")
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Status.Nodes) != n {
		t.Fatalf("Up with %d nodes, want %d", len(cl.Status.Nodes), n)
	}
	for _, nd := range cl.Status.Nodes {
		if !nd.Reachable {
			t.Errorf("node %s not reachable: %+v", nd.Address, nd)
		}
	}
	code, out, stderr := bin.Run(t, c.URL, "run", "wide", "--node", "all", "-o", "json", "--", "echo", "ok")
	var res []struct {
		Node     string `json:"node"`
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || len(res) != n {
		t.Fatalf("run --node all: exit %d %v, %d results: %s", code, err, len(res), stderr)
	}
	for _, r := range res {
		if r.ExitCode != 0 || r.Stdout != "ok\n" {
			t.Errorf("run on %s: %+v", r.Node, r)
		}
	}
}
