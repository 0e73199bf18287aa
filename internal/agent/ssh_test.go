package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
)

var ensureUser = sync.OnceValue(func() error {
	return sshnode.EnsureUser(context.Background(), sshnode.TestUser, sshnode.TestPassword)
})

// sshNode starts a real sshd logging in as the unprivileged test user and
// returns it with a connection and the target used to dial it.
func sshNode(t testing.TB, opts sshnode.Options) (*sshnode.Node, *sshx.Client, sshx.Target) {
	t.Helper()
	if err := ensureUser(); err != nil {
		t.Fatal(err)
	}
	k, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	opts.User = sshnode.TestUser
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, k.AuthorizedKey)
	n := sshnode.StartT(t, opts)
	tg := sshx.Target{Host: n.Addr(), Port: n.Port(), User: n.User(), PrivateKey: k.PrivatePEM, ConnectTimeout: 5 * time.Second}
	c, err := (&sshx.Dialer{HostKeys: &sshx.MemoryHostKeys{}, Logger: quietLog}).Dial(ctxT(t, 10*time.Second), tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return n, c, tg
}

// testVersion is unique per call so concurrent test runs sharing the test
// user's home never see each other's binaries.
func testVersion() string {
	var b [6]byte
	rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:])
}

func testBinary(t testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// installT installs the test binary as version v and removes it afterwards
// (loopback nodes share this machine's file system).
func installT(t testing.TB, c *sshx.Client, v string) (string, bool) {
	t.Helper()
	p, up, err := Install(ctxT(t, 30*time.Second), c.SSH(), testBinary(t), v)
	if err != nil {
		t.Fatalf("Install %s: %v", v, err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return p, up
}

func TestInstallStartRunKill(t *testing.T) {
	_, c, _ := sshNode(t, sshnode.Options{})
	v := testVersion()
	p, up := installT(t, c, v)
	if !up || !strings.HasSuffix(p, "/.rh/bin/rhcli-"+v) || !filepath.IsAbs(p) {
		t.Fatalf("first Install: %s, uploaded=%v", p, up)
	}
	if p2, up := installT(t, c, v); up || p2 != p {
		t.Fatalf("second Install: %s, uploaded=%v; want no upload", p2, up)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed file: %v, %v", fi, err)
	}
	// A different version is a different file; a damaged file is replaced.
	if _, up := installT(t, c, testVersion()); !up {
		t.Fatal("new version not uploaded")
	}
	if err := os.WriteFile(p, []byte("corrupt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, up := installT(t, c, v); !up {
		t.Fatal("damaged binary not replaced")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".rhcli-"+v+".tmp-*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}

	ctx := ctxT(t, 30*time.Second)
	ac, err := Start(ctx, c.SSH(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	var out bytes.Buffer
	code, err := ac.Run(ctx, RunRequest{Shell: `echo "$(id -un) $PWD"`, Stdout: &out})
	if err != nil || code != 0 || out.String() != sshnode.TestUser+" "+filepath.Dir(filepath.Dir(filepath.Dir(p)))+"\n" {
		t.Fatalf("Run over SSH: %d, %v, %q", code, err, out.String())
	}
	if f, err := ac.Facts(ctx); err != nil || f.OS != "linux" {
		t.Fatalf("Facts: %+v, %v", f, err)
	}
	if e, err := ac.FS().Stat(ctx, ".rh/bin/rhcli-"+v); err != nil || e.Mode.Perm() != 0o755 {
		t.Fatalf("Stat relative to home: %+v, %v", e, err)
	}

	// The agent dying on the node is noticed.
	pid := ac.Hello().PID
	if pid <= 1 {
		t.Fatalf("agent pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ac.Done():
		t.Logf("Done after kill -9: %v", ac.Err())
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the agent was killed")
	}
	if _, err := ac.Run(ctx, RunRequest{Argv: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run on a dead agent: %v", err)
	}
}

func TestInstallReadOnlyHome(t *testing.T) {
	_, c, _ := sshNode(t, sshnode.Options{ReadOnlyHome: true})
	_, _, err := Install(ctxT(t, 30*time.Second), c.SSH(), testBinary(t), testVersion())
	var cre *CannotRunError
	if !errors.Is(err, ErrCannotRun) || !errors.As(err, &cre) || !strings.Contains(err.Error(), "writable home") {
		t.Fatalf("Install on a read-only home: %v; want ErrCannotRun", err)
	}
}

func TestInstallWrongArch(t *testing.T) {
	_, c, _ := sshNode(t, sshnode.Options{})
	b, err := os.ReadFile(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	// e_machine (offset 18, little endian): claim the other common arch.
	if b[18] == 0xB7 { // EM_AARCH64
		b[18], b[19] = 0x3E, 0 // EM_X86_64
	} else {
		b[18], b[19] = 0xB7, 0
	}
	foreign := filepath.Join(t.TempDir(), "rhcli-foreign")
	if err := os.WriteFile(foreign, b, 0o755); err != nil {
		t.Fatal(err)
	}
	_, up, err := Install(ctxT(t, 30*time.Second), c.SSH(), foreign, testVersion())
	if !errors.Is(err, ErrCannotRun) || up || !strings.Contains(err.Error(), "architecture") {
		t.Fatalf("Install of a foreign binary: uploaded=%v, %v", up, err)
	}
}

// benchSetup starts a node, installs and starts the agent, and returns the
// agent client plus a pool holding one connection to the same node.
func benchSetup(b *testing.B) (*Client, *sshx.Pool, sshx.Target) {
	_, c, tg := sshNode(b, sshnode.Options{})
	p, _ := installT(b, c, testVersion())
	ac, err := Start(ctxT(b, 30*time.Second), c.SSH(), p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ac.Close() })
	pool := &sshx.Pool{Dialer: &sshx.Dialer{HostKeys: &sshx.MemoryHostKeys{}, Logger: quietLog}}
	b.Cleanup(func() { pool.Close() })
	if _, err := pool.Run(context.Background(), tg, sshx.RunRequest{Command: "true"}); err != nil { // warm
		b.Fatal(err)
	}
	return ac, pool, tg
}

// BenchmarkRunTrue: `true` through the warm agent over a real sshd.
func BenchmarkRunTrue(b *testing.B) {
	ac, _, _ := benchSetup(b)
	ctx := context.Background()
	for b.Loop() {
		if code, err := ac.Run(ctx, RunRequest{Argv: []string{"true"}}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkSSHSessionTrue: `true` in a new session over the same node's
// pooled sshx connection — what every command costs without the agent.
func BenchmarkSSHSessionTrue(b *testing.B) {
	_, pool, tg := benchSetup(b)
	ctx := context.Background()
	for b.Loop() {
		if code, err := pool.Run(ctx, tg, sshx.RunRequest{Command: "true"}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}
