package sshgateway_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/sshgateway"
)

func lastOctet(t *testing.T, addr string) int {
	t.Helper()
	n, err := strconv.Atoi(addr[strings.LastIndexByte(addr, '.')+1:])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestThreeNodesRunDegradeAndRecover(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	key := userKey(t, sshnode.KeyRSA)
	nodes := keyNodes(t, 3, key)
	e.create(t, "three", byoSpec(nodes...), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	c := e.waitPhase(t, "three", rh.PhaseUp)
	if len(c.Status.Nodes) != 3 || c.Status.Message != "3/3 nodes reachable" {
		t.Fatalf("status = %+v", c.Status)
	}
	for i, nd := range c.Status.Nodes {
		if !nd.Reachable || nd.Address != nodes[i].Addr() || nd.Facts == nil || nd.Facts.CPUs < 1 || nd.HostKey != fingerprint(nodes[i]) {
			t.Fatalf("node %d = %+v (facts %+v)", i, nd, nd.Facts)
		}
	}

	// Each node answers for itself: its address and an exit code of its own.
	res, err := e.cl.Run(ctx, "three", `a=$(echo "$SSH_CONNECTION" | cut -d' ' -f3); echo "on $a $GREETING"; exit ${a##*.}`,
		client.RunOptions{Node: "all", Env: map[string]string{"GREETING": "hi there"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results = %+v", res)
	}
	for i, r := range res {
		want := nodes[i].Addr()
		if r.Node != want || r.Stdout != "on "+want+" hi there\n" || r.ExitCode != lastOctet(t, want) || r.Error != "" {
			t.Fatalf("result %d = %+v, want node %s", i, r, want)
		}
	}

	// 10 MiB of random bytes from every node at once, checked by sha256.
	const size = 10 << 20
	res, err = e.cl.Run(ctx, "three", "f=$(mktemp) && head -c "+strconv.Itoa(size)+" /dev/urandom > $f && sha256sum < $f | cut -d' ' -f1 >&2 && cat $f; rm -f $f",
		client.RunOptions{Node: "all"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		sum := sha256.Sum256([]byte(r.Stdout))
		if r.ExitCode != 0 || len(r.Stdout) != size || hex.EncodeToString(sum[:]) != strings.TrimSpace(r.Stderr) {
			t.Fatalf("node %s: exit %d, %d bytes, sum %x, node's sum %q", r.Node, r.ExitCode, len(r.Stdout), sum, r.Stderr)
		}
	}
	// Selecting by index and by address.
	for _, sel := range []string{"1", nodes[2].Addr()} {
		res, err := e.cl.Run(ctx, "three", "true", client.RunOptions{Node: sel})
		if err != nil || len(res) != 1 {
			t.Fatalf("node %q: %+v %v", sel, res, err)
		}
	}
	if _, err := e.cl.Run(ctx, "three", "true", client.RunOptions{Node: "7"}); !errors.Is(err, rh.ErrInvalid) {
		t.Fatalf("node 7: %v, want invalid", err)
	}

	// A node goes down: the next refresh names it.
	nodes[1].Kill()
	c = e.refresh(t, "three")
	if c.Status.Phase != rh.PhaseDegraded || !strings.Contains(c.Status.Message, nodes[1].Addr()) || !strings.Contains(c.Status.Message, "2/3") {
		t.Fatalf("after kill: %s %q", c.Status.Phase, c.Status.Message)
	}
	if c.Status.Nodes[1].Reachable || !c.Status.Nodes[0].Reachable {
		t.Fatalf("nodes after kill = %+v", c.Status.Nodes)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := nodes[1].Restart(rctx); err != nil {
		t.Fatal(err)
	}
	c = e.refresh(t, "three")
	if c.Status.Phase != rh.PhaseUp || !c.Status.Nodes[1].Reachable {
		t.Fatalf("after restart: %s %q", c.Status.Phase, c.Status.Message)
	}
}

// Cancel kills the remote process group through the node agent, and over a
// plain session where the gateway runs without agents; so does a timeout,
// which the result names as one.
func TestCancelKillsRemoteProcess(t *testing.T) {
	t.Parallel()
	t.Run("agent", func(t *testing.T) { testCancel(t, false, 0) })
	t.Run("sessions", func(t *testing.T) { testCancel(t, true, 0) })
	t.Run("timeout agent", func(t *testing.T) { testCancel(t, false, 2*time.Second) })
	t.Run("timeout sessions", func(t *testing.T) { testCancel(t, true, 2*time.Second) })
}

// A timeout is the command's time: a node slow to log in (a proxy command
// that takes 5 s to connect, as a loaded bastion might) does not use it up.
func TestTimeoutCountsFromTheCommandsStart(t *testing.T) {
	t.Parallel()
	e := start(t)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	spec := byoSpec(n)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec.BYO.ProxyCommand = fmt.Sprintf("sleep 5; RH_TEST_NC=%s=%d exec %s %%h", n.Addr(), n.Port(), self)
	e.create(t, "slow", spec, &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, "slow", rh.PhaseUp)
	// A new gateway has no connection to reuse: the run logs in through the
	// slow proxy before the command starts.
	e.swapGateway(t, func(*sshgateway.Config) {})
	res, err := e.cl.Run(context.Background(), "slow", "echo ok", client.RunOptions{Timeout: 4 * time.Second})
	if err != nil || len(res) != 1 || res[0].ExitCode != 0 || res[0].Stdout != "ok\n" || res[0].TimedOut {
		t.Fatalf("run with a 4 s timeout through a 5 s login = %+v, %v", res, err)
	}
}

// Under a timeout, a command that cannot start (over the agent: no such
// working directory) still says why, rather than reading as a cancel.
func TestTimeoutKeepsACommandsOwnError(t *testing.T) {
	t.Parallel()
	e := start(t)
	n := e.oneNode(t, "dir", sshnode.Options{})
	missing := filepath.Join(n.TempDir(t), "missing")
	res, err := e.cl.Run(context.Background(), "dir", "true", client.RunOptions{Timeout: time.Minute, Dir: missing})
	if err != nil || len(res) != 1 || res[0].TimedOut || !strings.Contains(res[0].Error, "working directory "+missing) {
		t.Fatalf("run with a timeout in a missing directory = %+v, %v", res, err)
	}
}

// testCancel stops a running command: by cancelling its context, or with a
// timeout when timeout is set.
func testCancel(t *testing.T, disableAgent bool, timeout time.Duration) {
	e := startWith(t, func(c *sshgateway.Config) { c.DisableAgent = disableAgent })
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	e.create(t, "cancel", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, "cancel", rh.PhaseUp)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var out strings.Builder
	pid := make(chan int, 1)
	done := make(chan struct{})
	var res []client.RunResult
	var err error
	go func() {
		defer close(done)
		res, err = e.cl.Run(ctx, "cancel", `sleep 1000 & echo "pid $!"; wait`, client.RunOptions{
			Timeout: timeout,
			OnOutput: func(_, _ string, b []byte) {
				mu.Lock()
				defer mu.Unlock()
				out.Write(b)
				if f := strings.Fields(out.String()); len(f) == 2 && strings.HasSuffix(out.String(), "\n") {
					p, _ := strconv.Atoi(f[1])
					pid <- p
				}
			},
		})
	}()
	var p int
	select {
	case p = <-pid:
	case <-time.After(20 * time.Second):
		t.Fatal("the command never started")
	}
	if syscall.Kill(p, 0) != nil {
		t.Fatalf("remote sleep %d is not running", p)
	}
	if timeout == 0 {
		cancel()
		<-done
		if !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].ExitCode != -1 || res[0].TimedOut {
			t.Fatalf("cancelled run = %+v, %v", res, err)
		}
	} else {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("a run with a %s timeout still runs after a minute", timeout)
		}
		if err != nil || len(res) != 1 || res[0].ExitCode != -1 || !res[0].TimedOut || res[0].Error != "timed out after 2s" {
			t.Fatalf("timed-out run = %+v, %v", res, err)
		}
	}
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("remote process %d to end after cancel", p), func() bool {
		return syscall.Kill(p, 0) != nil
	})
}

// Nodes of other kinds come from the record's status.nodes, as their worker
// reported them, and the key their worker stored in the secret store.
// Once that worker reports the cluster gone, the gateway stops using the
// nodes it resolved, however long it would otherwise reuse them: the
// machine may be someone else's by now.
func TestRunOnNodesAnotherWorkerReported(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *sshgateway.Config) { c.NodeCacheTTL = time.Hour })
	ctx := context.Background()
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	c, err := e.cl.Create(ctx, "cloud", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "CPU:2+"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := json.Marshal(rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.secrets = append(e.secrets, string(key.PrivatePEM))
	kv, err := e.ns.JS.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.ClusterKey("cloud"), sec); err != nil {
		t.Fatal(err)
	}
	rep := worker.NewReporter(e.ns.JS, "skyworker", rh.KindOnDemand, "cloud", c.Generation)
	if err := rep.Report(ctx, rh.PhaseUp, "launched", []rh.Node{{Address: n.Addr(), Port: n.Port(), User: n.User(), Reachable: true}}, nil); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(t, "cloud", rh.PhaseUp)
	res, err := e.cl.Run(ctx, "cloud", "echo from-cloud", client.RunOptions{})
	if err != nil || len(res) != 1 || res[0].Stdout != "from-cloud\n" || res[0].Node != n.Addr() {
		t.Fatalf("run = %+v, %v", res, err)
	}

	if err := rep.Report(ctx, rh.PhaseTerminated, "terminated", nil, nil); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(t, "cloud", rh.PhaseTerminated)
	testkit.WaitErr(t, 30*time.Second, "runs on the terminated cluster to be refused", func() error {
		res, err := e.cl.Run(ctx, "cloud", "echo from-cloud", client.RunOptions{})
		if rh.ErrorCode(err) != rh.ECONFLICT || !strings.Contains(err.Error(), "Terminated") {
			return fmt.Errorf("run = %+v, %v", res, err)
		}
		return nil
	})
}
