// Package e2e runs rh as compose would: each service a separate `rhcli serve`
// process joined to one standalone NATS, driven by the real rhcli binary.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/proctest"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
)

// bin is the rhcli binary TestMain builds, with the credentials for each
// NATS a test started, so rhcli calls authenticate as a user would.
var bin = &proctest.Rhcli{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var version string
	if bin.Path, version, err = proctest.BuildRhcli(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building rhcli:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	proctest.RemoveAgents(version)
	os.RemoveAll(dir)
	os.Exit(code)
}

// secureNATS is a NATS server run from the configuration `rhcli
// nats-config` writes: rh's accounts, per-service users, an admin.
type secureNATS struct {
	URL, Dir string
	ns       *server.Server
}

// reload rereads the configuration files, as `nats-server --signal reload`.
func (n *secureNATS) reload(t *testing.T) {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join(n.Dir, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cur := n.ns.Addr().(*net.TCPAddr)
	opts.Host, opts.Port, opts.HTTPPort, opts.NoLog, opts.NoSigs = cur.IP.String(), cur.Port, 0, true, true
	if err := n.ns.ReloadOptions(opts); err != nil {
		t.Fatal(err)
	}
}

func startSecureNATS(t *testing.T) *secureNATS {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rh-nats")
	bin.NATSConfig(t, dir, testkit.FreeAddr(t), t.TempDir())
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatalf("the configuration nats-config wrote does not load: %v", err)
	}
	opts.HTTPPort, opts.NoLog, opts.NoSigs = 0, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS from nats-config did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	n := &secureNATS{URL: ns.ClientURL(), Dir: dir, ns: ns}
	bin.SetCreds(n.URL, filepath.Join(dir, "operator.creds"))
	return n
}

// serviceArgs are the flags that run one service on n with its own user.
func (n *secureNATS) serviceArgs(name string) []string { return proctest.ServiceArgs(n.Dir, name) }

func startService(t *testing.T, natsURL, name string, extra ...string) *proctest.Service {
	t.Helper()
	return startServiceEnv(t, natsURL, name, nil, extra...)
}

// startServiceEnv is startService with env (KEY=value) added to the
// service's environment only.
func startServiceEnv(t *testing.T, natsURL, name string, env []string, extra ...string) *proctest.Service {
	t.Helper()
	return bin.StartService(t, natsURL, name, proctest.ServiceOptions{Env: env, Args: extra})
}

func rhcli(t *testing.T, natsURL string, args ...string) (int, string, string) {
	t.Helper()
	return bin.Run(t, natsURL, args...)
}

func TestServicesAsSeparateProcesses(t *testing.T) {
	ns := startSecureNATS(t)
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	n1 := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	n2 := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}, Port: n1.Port()})
	keyPath := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(keyPath, key.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}

	registry := startService(t, ns.URL, "registry", ns.serviceArgs("registry")...)
	gateway := startService(t, ns.URL, "sshgateway", ns.serviceArgs("sshgateway")...)

	code, out, stderr := rhcli(t, ns.URL, "cluster", "create", "e2e", "--ips", n1.Addr()+","+n2.Addr(),
		"--ssh-port", fmt.Sprint(n1.Port()), "--ssh-user", n1.User(), "--ssh-key", keyPath, "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	var c rh.Cluster
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Status.Phase != rh.PhaseUp || len(c.Status.Nodes) != 2 {
		t.Fatalf("create --wait gave %s", out)
	}

	code, out, _ = rhcli(t, ns.URL, "run", "e2e", "--node", "all", "-o", "json", "--", "echo", "hi")
	var results []struct {
		Node     string `json:"node"`
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(out), &results); code != 0 || err != nil || len(results) != 2 {
		t.Fatalf("run: exit %d, %v: %s", code, err, out)
	}
	for _, r := range results {
		if r.ExitCode != 0 || r.Stdout != "hi\n" {
			t.Fatalf("run result %+v", r)
		}
	}

	// The gateway dies without warning and comes back: commands work again,
	// nothing was lost.
	gateway.Kill()
	gateway = startService(t, ns.URL, "sshgateway", ns.serviceArgs("sshgateway")...)
	if code, out, stderr := rhcli(t, ns.URL, "run", "e2e", "--", "echo", "again"); code != 0 || out != "again\n" {
		t.Fatalf("run after gateway restart: exit %d %q %q", code, out, stderr)
	}

	// The registry restarts: records live in NATS, not in the process.
	registry.Stop(t)
	registry = startService(t, ns.URL, "registry", ns.serviceArgs("registry")...)
	code, out, _ = rhcli(t, ns.URL, "cluster", "get", "e2e", "-o", "json")
	if err := json.Unmarshal([]byte(out), &c); code != 0 || err != nil || c.Status.Phase != rh.PhaseUp {
		t.Fatalf("get after registry restart: exit %d: %s", code, out)
	}

	// A node stops answering: the reconciler's refresh shows it within a period.
	n2.Stop()
	degraded := testkit.Poll(30*time.Second, func() bool {
		_, out, _ = rhcli(t, ns.URL, "cluster", "get", "e2e", "-o", "json")
		_ = json.Unmarshal([]byte(out), &c)
		return c.Status.Phase == rh.PhaseDegraded
	})
	if !degraded {
		t.Fatalf("cluster never showed Degraded after a node stopped: %s %q", c.Status.Phase, c.Status.Message)
	}
	if !strings.Contains(c.Status.Message, n2.Addr()) {
		t.Fatalf("Degraded message %q does not name %s", c.Status.Message, n2.Addr())
	}

	if code, _, stderr := rhcli(t, ns.URL, "cluster", "teardown", "e2e", "--wait"); code != 0 {
		t.Fatalf("teardown: exit %d: %s", code, stderr)
	}
	if code, _, stderr := rhcli(t, ns.URL, "cluster", "delete", "e2e"); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, stderr)
	}
	gateway.Stop(t)
	registry.Stop(t)
}

// On a NATS of your own, a user an admin adds is known to rh at once and
// can connect once nats-config --with-users rewrote the server's accounts
// and the server reloaded; a removed user is refused by rh at once.
func TestUsersOnANATSOfYourOwn(t *testing.T) {
	ns := startSecureNATS(t)
	startService(t, ns.URL, "registry", ns.serviceArgs("registry")...)
	aliceCreds := filepath.Join(t.TempDir(), "alice.creds")
	if code, _, stderr := rhcli(t, ns.URL, "user", "add", "alice", "--role", "member", "--file", aliceCreds); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	asAlice := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin.Path, args...)
		cmd.Env = append(os.Environ(), "RH_NATS_URL="+ns.URL, "RH_NATS_CREDS="+aliceCreds, "HOME="+t.TempDir())
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := asAlice("cluster", "list"); code == 0 {
		t.Fatalf("alice connected before the server knew her: %s", out)
	}
	if code, _, stderr := rhcli(t, ns.URL, "nats-config", "--dir", ns.Dir, "--with-users"); code != 0 {
		t.Fatalf("nats-config --with-users: exit %d: %s", code, stderr)
	}
	ns.reload(t)
	if code, out := asAlice("cluster", "list"); code != 0 {
		t.Fatalf("alice after the reload: exit %d: %s", code, out)
	}
	if code, _, stderr := rhcli(t, ns.URL, "user", "remove", "alice"); code != 0 {
		t.Fatalf("user remove: exit %d: %s", code, stderr)
	}
	ok := testkit.Poll(30*time.Second, func() bool { code, _ := asAlice("cluster", "list"); return code == 5 })
	if !ok {
		code, out := asAlice("cluster", "list")
		t.Fatalf("a removed user still gets answers: exit %d: %s", code, out)
	}
}
