package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/sshgateway"
)

// startGateway adds the SSH gateway to e and one sshd node, and creates the
// BYO cluster "box" on it through rhcli.
func startGateway(t *testing.T, e *registryEnv) *sshnode.Node {
	t.Helper()
	gw, err := sshgateway.Start(context.Background(), e.ns.NC, sshgateway.Config{
		HomeDir: t.TempDir(), Worker: worker.Config{RetryBase: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	n := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	keyPath := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(keyPath, key.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := e.rhcli(t, "cluster", "create", "box", "--ips", n.Addr(), "--ssh-user", n.User(),
		"--ssh-port", strconv.Itoa(n.Port()), "--ssh-key", keyPath, "--wait")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	return n
}

func TestRunPropagatesExitCodesAndPrintsJSON(t *testing.T) {
	e := startRegistry(t)
	startGateway(t, e)

	code, out, stderr := e.rhcli(t, "run", "box", "--", "echo", "hello;", "echo", "oops", ">&2")
	if code != 0 || out != "hello\n" || stderr != "oops\n" {
		t.Fatalf("run: exit %d, out %q, err %q", code, out, stderr)
	}
	if code, _, stderr := e.rhcli(t, "run", "box", "--", "exit 3"); code != 3 || stderr != "" {
		t.Fatalf("run exit 3: exit %d, stderr %q", code, stderr)
	}
	code, out, _ = e.rhcli(t, "run", "box", "-o", "json", "--env", "X=from env", "--", `echo "$X"; echo err >&2; exit 5`)
	var res []map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("run -o json: %v\n%s", err, out)
	}
	if code != 5 || len(res) != 1 || res[0]["exit_code"] != 5.0 || res[0]["stdout"] != "from env\n" || res[0]["stderr"] != "err\n" || res[0]["node"] == "" {
		t.Fatalf("run -o json: exit %d, %v", code, res)
	}
	if code, out, _ := e.rhcli(t, "run-python", "box", "--", "print(6*7)"); code != 0 || out != "42\n" {
		t.Fatalf("run-python: exit %d, %q", code, out)
	}
	if code, _, stderr := e.rhcli(t, "run", "nope", "--", "true"); code != 3 || !strings.Contains(stderr, "does not exist") {
		t.Fatalf("run on a missing cluster: exit %d, %q", code, stderr)
	}
	if code, _, stderr := e.rhcli(t, "run", "box", "--node", "9", "--", "true"); code != 2 || !strings.Contains(stderr, "node") {
		t.Fatalf("run --node 9: exit %d, %q", code, stderr)
	}
}

func TestPutGetSSHAndTrustThroughRhcli(t *testing.T) {
	e := startRegistry(t)
	startGateway(t, e)
	src := t.TempDir()
	_ = os.WriteFile(filepath.Join(src, "a"), []byte("abc"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "b"), []byte("defg"), 0o600)
	remote := filepath.Join(t.TempDir(), "r")
	if code, out, stderr := e.rhcli(t, "put", "box", src, remote); code != 0 || out != "2 files sent, 7 bytes\n" {
		t.Fatalf("put: exit %d, %q %q", code, out, stderr)
	}
	if code, out, _ := e.rhcli(t, "put", "box", src, remote); code != 0 || out != "0 files sent, 0 bytes\n" {
		t.Fatalf("second put: exit %d, %q", code, out)
	}
	// rsync-style filter rules, as rsync users write them.
	filtered := filepath.Join(t.TempDir(), "f")
	if code, out, stderr := e.rhcli(t, "put", "box", src, filtered, "--filter", "- b"); code != 0 || out != "1 files sent, 3 bytes\n" {
		t.Fatalf("put --filter: exit %d, %q %q", code, out, stderr)
	}
	if code, _, stderr := e.rhcli(t, "put", "box", src, filtered, "--filter", "bogus rule"); code != 2 || !strings.Contains(stderr, "filter") {
		t.Fatalf("put with a bad filter: exit %d, %q", code, stderr)
	}
	back := filepath.Join(t.TempDir(), "back")
	if code, out, _ := e.rhcli(t, "get", "box", remote, back); code != 0 || out != "2 files received, 7 bytes\n" {
		t.Fatalf("get: exit %d, %q", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(back, "b")); string(b) != "defg" {
		t.Fatalf("fetched b = %q", b)
	}
	// The real OpenSSH client, with the stored key and the pinned host key.
	if code, out, stderr := e.rhcli(t, "ssh", "box", "--", "echo", "via-ssh"); code != 0 || out != "via-ssh\n" {
		t.Fatalf("ssh: exit %d, %q %q", code, out, stderr)
	}
	if code, _, _ := e.rhcli(t, "ssh", "box", "--", "exit", "7"); code != 7 {
		t.Fatalf("ssh exit 7: exit %d", code)
	}
	if code, out, _ := e.rhcli(t, "cluster", "trust", "box"); code != 0 || !strings.Contains(out, "forgot the host keys") {
		t.Fatalf("trust: exit %d, %q", code, out)
	}
}
