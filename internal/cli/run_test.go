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

	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/sshgateway"
)

// startGateway adds the SSH gateway to e and one sshd node, and creates the
// BYO cluster "box" on it through rhcli.
func startGateway(t *testing.T, e *registryEnv) *sshnode.Node {
	t.Helper()
	return startGatewayNodes(t, e, "box", 1)[0]
}

// startGatewayNodes adds the SSH gateway to e and count sshd nodes sharing
// a port and a key, and creates the BYO cluster name on them through rhcli.
func startGatewayNodes(t *testing.T, e *registryEnv, name string, count int) []*sshnode.Node {
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
	var nodes []*sshnode.Node
	var ips []string
	for i := range count {
		o := sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}}
		if i > 0 {
			o.Port = nodes[0].Port() // a BYO cluster's nodes share one port
		}
		n := sshnode.StartT(t, o)
		nodes = append(nodes, n)
		ips = append(ips, n.Addr())
	}
	keyPath := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(keyPath, key.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	n := nodes[0]
	code, _, stderr := e.rhcli(t, "cluster", "create", name, "--ips", strings.Join(ips, ","), "--ssh-user", n.User(),
		"--ssh-port", strconv.Itoa(n.Port()), "--ssh-key", keyPath, "--wait")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	return nodes
}

func TestRunPropagatesExitCodesAndPrintsJSON(t *testing.T) {
	e := startRegistry(t)
	startGateway(t, e)

	code, out, stderr := e.rhcli(t, "run", "box", "--", "echo hello; echo oops >&2")
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
	// --timeout stops the command and exits 124, as timeout(1) does.
	code, out, stderr = e.rhcli(t, "run", "box", "--timeout", "1s", "--", "echo started; sleep 600")
	if code != cli.ExitTimedOut || out != "started\n" || !strings.Contains(stderr, "timed out after 1s") {
		t.Fatalf("run --timeout 1s: exit %d, out %q, err %q", code, out, stderr)
	}
	code, out, _ = e.rhcli(t, "run", "box", "-o", "json", "--timeout", "1s", "--", "sleep 600")
	res = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != cli.ExitTimedOut || len(res) != 1 || res[0]["timed_out"] != true {
		t.Fatalf("run -o json --timeout 1s: exit %d, %v\n%s", code, err, out)
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
	n := startGateway(t, e)
	src := t.TempDir()
	_ = os.WriteFile(filepath.Join(src, "a"), []byte("abc"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "b"), []byte("defg"), 0o600)
	remote := filepath.Join(n.TempDir(t), "r")
	if code, out, stderr := e.rhcli(t, "put", "box", src, remote); code != 0 || out != "2 files sent, 7 bytes\n" {
		t.Fatalf("put: exit %d, %q %q", code, out, stderr)
	}
	if code, out, _ := e.rhcli(t, "put", "box", src, remote); code != 0 || out != "0 files sent, 0 bytes\n" {
		t.Fatalf("second put: exit %d, %q", code, out)
	}
	// rsync-style filter rules, as rsync users write them.
	filtered := filepath.Join(n.TempDir(t), "f")
	if code, out, stderr := e.rhcli(t, "put", "box", src, filtered, "--filter", "- b"); code != 0 || out != "1 file sent, 3 bytes\n" {
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
	// A missing source is not found, says which, and reports no transfer.
	missing := filepath.Join(src, "missing")
	if code, out, stderr := e.rhcli(t, "put", "box", missing, remote); code != 3 || out != "" || stderr != "rhcli: local: "+missing+" does not exist\n" {
		t.Errorf("put of a missing local path: exit %d, %q %q", code, out, stderr)
	}
	missing = filepath.Join(n.TempDir(t), "missing")
	code, out, stderr := e.rhcli(t, "get", "box", missing, back)
	if code != 3 || out != "" || !strings.Contains(stderr, missing+": no such file or directory") || strings.Contains(stderr, "file does not exist") || strings.Count(stderr, missing) != 1 {
		t.Errorf("get of a missing remote path: exit %d, %q %q", code, out, stderr)
	}
	// The real OpenSSH client, with the stored key and the pinned host key.
	if code, out, stderr := e.rhcli(t, "ssh", "box", "--", "echo", "via-ssh"); code != 0 || out != "via-ssh\n" {
		t.Fatalf("ssh: exit %d, %q %q", code, out, stderr)
	}
	// Several words are one command's arguments, as with rhcli run.
	if code, out, stderr := e.rhcli(t, "ssh", "box", "--", "printf", "%s|", "a b", "$HOME"); code != 0 || out != "a b|$HOME|" {
		t.Fatalf("ssh with argv: exit %d %q %s", code, out, stderr)
	}
	if code, _, _ := e.rhcli(t, "ssh", "box", "--", "exit", "7"); code != 7 {
		t.Fatalf("ssh exit 7: exit %d", code)
	}
	if code, out, _ := e.rhcli(t, "cluster", "trust", "box"); code != 0 || !strings.Contains(out, "forgot the host keys") {
		t.Fatalf("trust: exit %d, %q", code, out)
	}
}

// Issue 11: the words after -- mean exactly what was typed. Several words
// are one command's argv, passed unchanged; one word is a shell command line.
func TestRunKeepsArgvAndTakesOneWordAsAShellLine(t *testing.T) {
	e := startRegistry(t)
	startGatewayNodes(t, e, "pair", 2)
	cases := []struct {
		cmd  []string
		want string
	}{
		{[]string{"printf", "%s|", "a b", "$HOME", "*", "", "it's", `"q"`, "~", "X=1", "a\nb", "-n"}, "a b|$HOME|*||it's|\"q\"|~|X=1|a\nb|-n|"},
		{[]string{"echo $((1+2))"}, "3\n"},
	}
	// The head node alone, its output passed through.
	if code, out, stderr := e.rhcli(t, "run", "pair", "--", "sh", "-c", `echo "a b"`); code != 0 || out != "a b\n" {
		t.Errorf(`run -- sh -c 'echo "a b"': exit %d, out %q, stderr %q`, code, out, stderr)
	}
	// Input: only with -i, to one node, all of it, as the command reads it.
	big := strings.Repeat("0123456789abcdef", 40000) // 640 KB: several chunks
	if code, out, stderr := e.rhcliIn(t, strings.NewReader(big), "run", "pair", "-i", "--", "wc", "-c"); code != 0 || strings.TrimSpace(out) != strconv.Itoa(len(big)) {
		t.Errorf("run -i -- wc -c: exit %d, %q %q, want %d bytes counted", code, out, stderr, len(big))
	}
	if code, out, stderr := e.rhcliIn(t, strings.NewReader("not sent\n"), "run", "pair", "--", "cat"); code != 0 || out != "" {
		t.Errorf("run -- cat without -i: exit %d, %q %q, want empty input", code, out, stderr)
	}
	if code, _, stderr := e.rhcliIn(t, strings.NewReader("x"), "run", "pair", "--node", "all", "-i", "--", "cat"); code != 2 || !strings.Contains(stderr, "stdin") {
		t.Errorf("run --node all -i: exit %d, %q, want invalid input naming stdin", code, stderr)
	}
	// A command that reads none of a large input still ends, and so does rhcli.
	if code, out, stderr := e.rhcliIn(t, strings.NewReader(strings.Repeat(big, 8)), "run", "pair", "-i", "--", "echo", "done"); code != 0 || out != "done\n" {
		t.Errorf("run -i -- echo done with 5 MB of unread input: exit %d, %q %q", code, out, stderr)
	}
	// Several nodes: every line, the unfinished last one too, names its node.
	code, out, stderr := e.rhcli(t, "run", "pair", "--node", "all", "--", `printf 'x\ny'`)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("run --node all in a table: exit %d, %q %q", code, out, stderr)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "[") || !(strings.HasSuffix(l, "] x") || strings.HasSuffix(l, "] y")) {
			t.Errorf("run --node all: line %q is not [node] x or [node] y", l)
		}
	}
	// Every node gets the same command.
	for _, tc := range cases {
		args := append([]string{"run", "pair", "--node", "all", "-o", "json", "--"}, tc.cmd...)
		code, out, stderr := e.rhcli(t, args...)
		var res []struct {
			Node   string `json:"node"`
			Stdout string `json:"stdout"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res) != 2 {
			t.Fatalf("run --node all %q: exit %d, %v, %s %s", tc.cmd, code, err, out, stderr)
		}
		for _, r := range res {
			if r.Stdout != tc.want {
				t.Errorf("run --node all %q on %s: %q, want %q", tc.cmd, r.Node, r.Stdout, tc.want)
			}
		}
	}
	// run-python: CODE, then its sys.argv[1:] as typed, on every node.
	code, out, stderr = e.rhcli(t, "run-python", "pair", "--node", "all", "--", "import sys; print(sys.argv[1:])", "a b", "$HOME", "*")
	if code != 0 || strings.Count(out, "] ['a b', '$HOME', '*']\n") != 2 {
		t.Errorf("run-python --node all with arguments: exit %d, %q %q", code, out, stderr)
	}
}
