package sshx_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"golang.org/x/crypto/ssh"
)

// TestMain doubles as a netcat for ProxyCommand tests: run with
// SSHX_TEST_PROXY=1 and host port arguments, it pipes stdin/stdout to
// that address. No nc is needed on the machine.
func TestMain(m *testing.M) {
	if os.Getenv("SSHX_TEST_PROXY") == "1" {
		os.Exit(netcat(os.Args[1], os.Args[2]))
	}
	os.Exit(m.Run())
}

func netcat(host, port string) int {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		return 1
	}
	go func() {
		io.Copy(conn, os.Stdin)
		conn.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(os.Stdout, conn)
	return 0
}

// proxyCommand is a ProxyCommand that reaches %h:%p through netcat above.
func proxyCommand(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "SSHX_TEST_PROXY=1 exec " + sshx.ShellQuote(exe) + " %h %p"
}

// keyNode starts a node accepting a fresh key of type kt and returns it
// with a Target that logs in with that key.
func keyNode(t *testing.T, kt sshnode.KeyType, opts sshnode.Options) (*sshnode.Node, sshx.Target) {
	t.Helper()
	k, err := sshnode.GenerateUserKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, k.AuthorizedKey)
	if opts.User == "" {
		opts.User = testUser(t)
	}
	n := sshnode.StartT(t, opts)
	return n, targetOf(n, k.PrivatePEM)
}

func targetOf(n *sshnode.Node, key []byte) sshx.Target {
	return sshx.Target{Host: n.Addr(), Port: n.Port(), User: n.User(), PrivateKey: key, ConnectTimeout: 5 * time.Second}
}

func newDialer() *sshx.Dialer { return &sshx.Dialer{HostKeys: &sshx.MemoryHostKeys{}} }

func newPool(t *testing.T) *sshx.Pool {
	p := &sshx.Pool{Dialer: newDialer()}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, d *sshx.Dialer, tg sshx.Target) *sshx.Client {
	t.Helper()
	c, err := d.Dial(context.Background(), tg)
	if err != nil {
		t.Fatalf("dial %s: %v", tg, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func sshParseRaw(pemBytes []byte) (any, error) { return ssh.ParseRawPrivateKey(pemBytes) }

var ensureUser = sync.OnceValue(func() error {
	return sshnode.EnsureUser(context.Background(), sshnode.TestUser, sshnode.TestPassword)
})

// testUser is the account nodes log in as. Not root: root's shell rc
// files on a dev machine can add most of a second to every session.
func testUser(t *testing.T) string {
	if err := ensureUser(); err != nil {
		t.Fatal(err)
	}
	return sshnode.TestUser
}
