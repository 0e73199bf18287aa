package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/proctest"
	"github.com/rhq/rh/internal/testkit"
)

// startSimServe runs `rhcli serve --sim` (embedded NATS, every service, the
// SkyPilot and SageMaker simulators) as its own process and returns its URL.
func startSimServe(t *testing.T) string {
	t.Helper()
	return startSimServeIn(t, t.TempDir())
}

// startSimServeIn is startSimServe with the data dir given (its auth/ holds
// the services' credentials) and extra serve flags (e.g. --http-addr).
func startSimServeIn(t *testing.T, dataDir string, extra ...string) string {
	t.Helper()
	addr := testkit.FreeAddr(t)
	args := append([]string{"serve", "--sim", "--data-dir", dataDir, "--listen", addr, "--reconcile-every", "1s"}, extra...)
	cmd := exec.Command(bin.Path, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	serve := proctest.Start(t, "rhcli serve --sim", cmd, proctest.TermCleanAtCleanup)
	url := "nats://" + addr
	bin.SetCreds(url, filepath.Join(dataDir, "auth", "operator.creds"))
	if !testkit.Poll(60*time.Second, func() bool { code, _, _ := rhcli(t, url, "cluster", "list"); return code == 0 }) {
		t.Fatalf("rhcli serve --sim never answered:\n%s", serve.Log.String())
	}
	return url
}

func getCluster(t *testing.T, url, name string) rh.Cluster {
	t.Helper()
	code, out, stderr := rhcli(t, url, "cluster", "get", name, "-o", "json")
	var c rh.Cluster
	if err := json.Unmarshal([]byte(out), &c); code != 0 || err != nil {
		t.Fatalf("get %s: exit %d %v %s", name, code, err, stderr)
	}
	return c
}

// runOn runs a command through rhcli -o json and returns each node's result.
func runOn(t *testing.T, url, name string, args ...string) []struct {
	Node     string `json:"node"`
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
} {
	t.Helper()
	code, out, stderr := rhcli(t, url, append([]string{"run", name, "-o", "json"}, args...)...)
	var res []struct {
		Node     string `json:"node"`
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("run %s %v: exit %d %v\n%s\n%s", name, args, code, err, out, stderr)
	}
	return res
}

// Issue 4's walk through rhcli: a 2-node on-demand cluster on the SkyPilot simulator.
func TestOnDemandClusterThroughRhcli(t *testing.T) {
	url := startSimServe(t)
	if code, _, stderr := rhcli(t, url, "cluster", "create", "od", "--instance-type", "A100:4", "--num-instances", "2",
		"--provider", "aws", "--region", "us-east-1", "--autostop-mins", "30", "--wait"); code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	c := getCluster(t, url, "od")
	if c.Status.Phase != rh.PhaseUp || len(c.Status.Nodes) != 2 {
		t.Fatalf("cluster %s with %d nodes", c.Status.Phase, len(c.Status.Nodes))
	}
	res := runOn(t, url, "od", "--node", "all", "--", "echo", "on-node")
	if len(res) != 2 || res[0].Stdout != "on-node\n" || res[1].Stdout != "on-node\n" {
		t.Fatalf("run on both nodes: %+v", res)
	}
	local := filepath.Join(t.TempDir(), "weights.bin")
	if err := os.WriteFile(local, []byte("0123456789"), 0o640); err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf("/tmp/rh-e2e-od-%d/weights.bin", os.Getpid())
	if code, out, stderr := rhcli(t, url, "put", "od", local, remote, "--node", "all"); code != 0 || !strings.Contains(out, "1 file sent") {
		t.Fatalf("put: exit %d %q %q", code, out, stderr)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(remote)) })
	res = runOn(t, url, "od", "--", "cat", remote)
	if res[0].Stdout != "0123456789" {
		t.Fatalf("the put file reads %q on the node", res[0].Stdout)
	}
	if code, _, stderr := rhcli(t, url, "cluster", "autostop", "od", "45"); code != 0 {
		t.Fatalf("autostop: %d %s", code, stderr)
	}
	testkit.Eventually(t, 30*time.Second, "status to report the new autostop", func() bool {
		return strings.Contains(getCluster(t, url, "od").Status.Info["autostop"], "45")
	})
	if code, _, stderr := rhcli(t, url, "cluster", "teardown", "od", "--wait"); code != 0 {
		t.Fatalf("teardown: %d %s", code, stderr)
	}
	if p := getCluster(t, url, "od").Status.Phase; p != rh.PhaseTerminated {
		t.Fatalf("after teardown: %s", p)
	}
	if code, _, stderr := rhcli(t, url, "cluster", "delete", "od"); code != 0 {
		t.Fatalf("delete: %d %s", code, stderr)
	}
}

// Issue 5's walk through rhcli: a compute-backend SageMaker cluster, reached
// through its SSM-style proxy command.
func TestSageMakerClusterThroughRhcli(t *testing.T) {
	url := startSimServe(t)
	if code, _, stderr := rhcli(t, url, "cluster", "create", "sm", "--instance-type", "ml.m5.large", "--role", "E2ERole", "--wait"); code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	c := getCluster(t, url, "sm")
	if c.Status.Phase != rh.PhaseUp || len(c.Status.Nodes) != 1 || !strings.Contains(c.Status.Nodes[0].ProxyCommand, "ssm-proxy") {
		t.Fatalf("cluster %s nodes %+v", c.Status.Phase, c.Status.Nodes)
	}
	res := runOn(t, url, "sm", "--", "echo", "through-ssm")
	if len(res) != 1 || res[0].Stdout != "through-ssm\n" {
		t.Fatalf("run through the proxy command: %+v", res)
	}
	if code, _, stderr := rhcli(t, url, "cluster", "teardown", "sm", "--wait"); code != 0 {
		t.Fatalf("teardown: %d %s", code, stderr)
	}
	code, out, _ := rhcli(t, url, "cluster", "events", "sm", "-o", "json")
	var hist []rh.Transition
	if err := json.Unmarshal([]byte(out), &hist); code != 0 || err != nil {
		t.Fatalf("events: %d %v", code, err)
	}
	var msgs []string
	for _, h := range hist {
		msgs = append(msgs, h.Message)
	}
	joined := strings.Join(msgs, " | ")
	for _, want := range []string{"Starting", "Training", "stopped"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("history lacks %q: %s", want, joined)
		}
	}
	if p := getCluster(t, url, "sm").Status.Phase; p != rh.PhaseTerminated {
		t.Fatalf("after teardown: %s", p)
	}
	// Up again, then teardown --delete: one command waits and forgets.
	if code, _, stderr := rhcli(t, url, "cluster", "up", "sm", "--wait"); code != 0 {
		t.Fatalf("up again: %d %s", code, stderr)
	}
	if code, out, stderr := rhcli(t, url, "cluster", "teardown", "sm", "--delete"); code != 0 || !strings.Contains(out, "deleted sm") {
		t.Fatalf("teardown --delete: %d %q %s", code, out, stderr)
	}
	if code, _, _ := rhcli(t, url, "cluster", "get", "sm"); code != 3 {
		t.Fatalf("get after teardown --delete: exit %d, want 3 (not found)", code)
	}
}

// Define now, launch later: create --no-up records and validates and
// launches nothing; up launches it; teardown --delete forgets it.
func TestDefineThenLaunch(t *testing.T) {
	url := startSimServe(t)
	if code, _, stderr := rhcli(t, url, "cluster", "create", "later", "--instance-type", "m5.xlarge", "--provider", "aws", "--no-up", "--wait"); code != 2 {
		t.Fatalf("--no-up --wait: exit %d, want 2: %s", code, stderr)
	}
	if code, _, stderr := rhcli(t, url, "cluster", "create", "later", "--instance-type", "m5.xlarge", "--provider", "aws", "--no-up"); code != 0 {
		t.Fatalf("create --no-up: exit %d: %s", code, stderr)
	}
	c := getCluster(t, url, "later")
	if c.Status.Phase != rh.PhaseDefined || !strings.Contains(c.Status.Message, "rhcli cluster up later") {
		t.Fatalf("after --no-up: %s %q", c.Status.Phase, c.Status.Message)
	}
	// Nothing was launched: a refresh and a teardown leave it as it is.
	if code, _, _ := rhcli(t, url, "cluster", "teardown", "later"); code != 0 {
		t.Fatal("teardown of a defined cluster failed")
	}
	if c := getCluster(t, url, "later"); c.Status.Phase != rh.PhaseDefined || len(c.History) != 1 {
		t.Fatalf("a defined cluster changed without an up: %s, %d history entries", c.Status.Phase, len(c.History))
	}
	// Bad input still changes nothing.
	if code, _, _ := rhcli(t, url, "cluster", "create", "later2", "--instance-type", "ml.m5.largee", "--role", "R", "--no-up"); code != 2 {
		t.Fatalf("an invalid --no-up create: exit %d, want 2", code)
	}
	if code, _, _ := rhcli(t, url, "cluster", "get", "later2"); code != 3 {
		t.Fatal("an invalid --no-up create left a record")
	}
	if code, _, stderr := rhcli(t, url, "cluster", "up", "later", "--wait"); code != 0 {
		t.Fatalf("up: exit %d: %s", code, stderr)
	}
	if c := getCluster(t, url, "later"); c.Status.Phase != rh.PhaseUp {
		t.Fatalf("after up: %s %q", c.Status.Phase, c.Status.Message)
	}
	if code, _, stderr := rhcli(t, url, "cluster", "teardown", "later", "--delete"); code != 0 {
		t.Fatalf("teardown --delete: exit %d: %s", code, stderr)
	}
}
