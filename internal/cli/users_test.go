package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/registry"
)

// as runs rhcli as the user whose credentials are in creds.
func (e *registryEnv) as(t *testing.T, creds string, args ...string) (int, string, string) {
	t.Helper()
	env := *e
	env.env = map[string]string{"RH_NATS_CREDS": creds}
	for k, v := range e.env {
		if k != "RH_NATS_CREDS" {
			env.env[k] = v
		}
	}
	return env.rhcli(t, args...)
}

func TestUsersAndSharingThroughRhcli(t *testing.T) {
	ns := natstest.StartSecure(t)
	reg, err := registry.Start(context.Background(), ns.ServiceConn(t, auth.SvcRegistry), registry.Config{Auth: ns.Authenticator()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	e := &registryEnv{ns: ns, env: map[string]string{"RH_NATS_URL": ns.URL, "USER": "tester", "HOME": t.TempDir()}}
	op := ns.Material.OperatorCreds
	dir := t.TempDir()
	aliceCreds, bobCreds := filepath.Join(dir, "alice.creds"), filepath.Join(dir, "bob.creds")

	if code, out, stderr := e.as(t, op, "user", "add", "alice", "--file", aliceCreds); code != 0 || !strings.Contains(out, aliceCreds) {
		t.Fatalf("user add alice: exit %d: %q %q", code, out, stderr)
	}
	if fi, err := os.Stat(aliceCreds); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	code, out, stderr := e.as(t, op, "user", "add", "bob", "--role", "member")
	if code != 0 || !strings.Contains(out, "BEGIN USER NKEY SEED") {
		t.Fatalf("user add bob (stdout): exit %d: %q", code, stderr)
	}
	if err := auth.WriteCredsFile(bobCreds, []byte(out)); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := e.as(t, op, "user", "add", "carol", "--file", aliceCreds); code != cli.ExitInvalid || !strings.Contains(stderr, "--file") {
		t.Fatalf("user add over an existing file: exit %d: %q", code, stderr)
	}
	if code, _, _ := e.as(t, op, "user", "add", "alice"); code != cli.ExitConflict {
		t.Fatalf("user add alice again: exit %d, want %d", code, cli.ExitConflict)
	}
	if code, _, stderr := e.as(t, op, "user", "add", "dave", "--role", "root"); code != cli.ExitInvalid || !strings.Contains(stderr, "--role") {
		t.Fatalf("user add --role root: exit %d: %q", code, stderr)
	}
	code, out, _ = e.as(t, op, "user", "list")
	if code != 0 || !strings.Contains(out, "CREATED_BY") || !strings.Contains(out, "alice") || !strings.Contains(out, "member") {
		t.Fatalf("user list: exit %d:\n%s", code, out)
	}

	// serve tells the NATS server about rh_users; here the test does.
	users := []rh.User{ns.Material.Operator}
	for _, n := range []string{"alice", "bob"} {
		testkit.Eventually(t, 10*time.Second, n+" in the directory", func() bool { _, ok := ns.Users.ByName(n); return ok })
		u, _ := ns.Users.ByName(n)
		users = append(users, u)
	}
	if err := ns.NS.SetUsers(users); err != nil {
		t.Fatal(err)
	}

	if code, _, stderr := e.as(t, aliceCreds, "cluster", "create", "box", "--ips", "10.0.0.1"); code != 0 {
		t.Fatalf("alice creates: exit %d: %s", code, stderr)
	}
	code, out, _ = e.as(t, aliceCreds, "cluster", "list")
	if code != 0 || !strings.Contains(out, "OWNER") || !strings.Contains(out, "alice") {
		t.Fatalf("cluster list: exit %d:\n%s", code, out)
	}
	if code, out, _ := e.as(t, bobCreds, "cluster", "list", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("bob's list: exit %d: %s", code, out)
	}
	if code, _, stderr := e.as(t, bobCreds, "cluster", "get", "box"); code != cli.ExitForbidden || !strings.Contains(stderr, "bob") {
		t.Fatalf("bob gets alice's cluster: exit %d: %q", code, stderr)
	}
	if code, _, stderr := e.as(t, aliceCreds, "cluster", "share", "box", "bob", "--access", "admin"); code != cli.ExitInvalid || !strings.Contains(stderr, "access") {
		t.Fatalf("share --access admin: exit %d: %q", code, stderr)
	}
	if code, out, stderr := e.as(t, aliceCreds, "cluster", "share", "box", "bob", "--access", "read"); code != 0 || !strings.Contains(out, "bob (read)") {
		t.Fatalf("share: exit %d: %q %q", code, out, stderr)
	}
	if code, _, _ := e.as(t, bobCreds, "cluster", "get", "box"); code != 0 {
		t.Fatalf("bob gets a shared cluster: exit %d", code)
	}
	if code, _, _ := e.as(t, bobCreds, "cluster", "teardown", "box"); code != cli.ExitForbidden {
		t.Fatalf("bob tears down with read access: exit %d", code)
	}
	if code, _, stderr := e.as(t, aliceCreds, "cluster", "unshare", "box", "bob"); code != 0 {
		t.Fatalf("unshare: exit %d: %s", code, stderr)
	}
	if code, _, _ := e.as(t, bobCreds, "cluster", "get", "box"); code != cli.ExitForbidden {
		t.Fatalf("bob after unshare: exit %d", code)
	}
	if code, _, _ := e.as(t, bobCreds, "user", "list"); code != cli.ExitForbidden {
		t.Fatalf("a member lists users: exit %d", code)
	}
	if code, out, _ := e.as(t, op, "user", "remove", "bob"); code != 0 || !strings.Contains(out, "removed bob") {
		t.Fatalf("user remove: exit %d: %s", code, out)
	}
	testkit.Eventually(t, 10*time.Second, "bob to be refused", func() bool {
		code, _, _ := e.as(t, bobCreds, "cluster", "list")
		return code == cli.ExitForbidden
	})
}
