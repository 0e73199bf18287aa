package sshnode_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"golang.org/x/crypto/ssh"
)

func dial(n *sshnode.Node, auth ssh.AuthMethod, timeout time.Duration) (*ssh.Client, error) {
	return ssh.Dial("tcp", n.HostPort(), &ssh.ClientConfig{
		User:            n.User(),
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(n.HostPublicKey()),
		Timeout:         timeout,
	})
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("run %q: %v: %s", cmd, err, out)
	}
	return string(out)
}

func TestKeyLoginEachKeyType(t *testing.T) {
	t.Parallel()
	for _, kt := range []sshnode.KeyType{sshnode.KeyEd25519, sshnode.KeyRSA, sshnode.KeyECDSA} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			k, err := sshnode.GenerateUserKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			n := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{k.AuthorizedKey}})
			if !strings.HasPrefix(n.Addr(), "127.0.0.") {
				t.Errorf("Addr = %s, want 127.0.0.x", n.Addr())
			}
			signer, err := ssh.ParsePrivateKey(k.PrivatePEM)
			if err != nil {
				t.Fatal(err)
			}
			c, err := dial(n, ssh.PublicKeys(signer), 5*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := run(t, c, "echo hi"); got != "hi\n" {
				t.Errorf("echo hi = %q", got)
			}
		})
	}
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	n := sshnode.StartT(t, sshnode.Options{Password: sshnode.TestPassword})
	if n.User() != sshnode.TestUser {
		t.Fatalf("User = %q, want %q", n.User(), sshnode.TestUser)
	}
	c, err := dial(n, ssh.Password(sshnode.TestPassword), 5*time.Second)
	if err != nil {
		t.Fatalf("dial with password: %v", err)
	}
	defer c.Close()
	if got := run(t, c, "id -un"); got != sshnode.TestUser+"\n" {
		t.Errorf("id -un = %q", got)
	}
	if _, err := dial(n, ssh.Password("wrong"), 5*time.Second); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestRestartKeepsIdentityAndRotateChangesKey(t *testing.T) {
	t.Parallel()
	k, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	n := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{k.AuthorizedKey}})
	hp, key := n.HostPort(), n.HostPublicKey()
	c, err := dial(n, ssh.PublicKeys(k.Signer), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The old connection dies with the old sshd.
	if err := c.Wait(); err == nil {
		t.Log("connection ended cleanly")
	}
	if n.HostPort() != hp || !bytes.Equal(n.HostPublicKey().Marshal(), key.Marshal()) {
		t.Fatal("Restart changed address or host key")
	}
	c2, err := dial(n, ssh.PublicKeys(k.Signer), 5*time.Second)
	if err != nil {
		t.Fatalf("dial after restart: %v", err)
	}
	c2.Close()
	if err := n.RotateHostKey(ctx); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(n.HostPublicKey().Marshal(), key.Marshal()) {
		t.Fatal("RotateHostKey kept the key")
	}
	_, err = ssh.Dial("tcp", hp, &ssh.ClientConfig{User: n.User(), Auth: []ssh.AuthMethod{ssh.PublicKeys(k.Signer)},
		HostKeyCallback: ssh.FixedHostKey(key), Timeout: 5 * time.Second})
	if err == nil {
		t.Fatal("old host key still accepted after rotation")
	}
}

// A connection sshd accepts while it is being stopped is ended with it: a
// pooled client must never keep talking to a server that holds the old
// host key after RotateHostKey returns.
func TestNoConnectionOutlivesARotation(t *testing.T) {
	t.Parallel()
	k, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	n := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{k.AuthorizedKey}})
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		old := n.HostPublicKey()
		cfg := &ssh.ClientConfig{User: n.User(), Auth: []ssh.AuthMethod{ssh.PublicKeys(k.Signer)},
			HostKeyCallback: ssh.FixedHostKey(old), Timeout: 5 * time.Second}
		stop := make(chan struct{})
		var mu sync.Mutex
		var clients []*ssh.Client
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c, err := ssh.Dial("tcp", n.HostPort(), cfg); err == nil {
						mu.Lock()
						clients = append(clients, c)
						mu.Unlock()
					}
				}
			})
		}
		// Let the dialers get going so some connect during the stop.
		testkit.WaitErr(t, 10*time.Second, "a first connection", func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(clients) == 0 {
				return errors.New("none yet")
			}
			return nil
		})
		if err := n.RotateHostKey(ctx); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		for i, c := range clients {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatalf("round %d: connection %d of %d under the old host key is still served after the rotation", round, i, len(clients))
			}
			c.Close()
		}
	}
}

func TestKillEndsSessionsAndCloseCleansUp(t *testing.T) {
	t.Parallel()
	k, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	n, err := sshnode.Start(context.Background(), sshnode.Options{AuthorizedKeys: []string{k.AuthorizedKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	c, err := dial(n, ssh.PublicKeys(k.Signer), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	out := &testkit.SyncBuffer{}
	s.Stdout = out
	if err := s.Start("echo $$; exec sleep 300"); err != nil {
		t.Fatal(err)
	}
	var pid int
	testkit.WaitErr(t, 5*time.Second, "remote pid", func() error {
		pid, err = strconv.Atoi(strings.TrimSpace(out.String()))
		return err
	})
	sshdPid := n.Pid()
	n.Kill()
	testkit.WaitErr(t, 5*time.Second, "session process gone", func() error {
		if exec.Command("kill", "-0", strconv.Itoa(pid)).Run() == nil {
			return errors.New("still alive")
		}
		return nil
	})
	if exec.Command("kill", "-0", strconv.Itoa(sshdPid)).Run() == nil {
		t.Error("sshd still alive after Kill")
	}
	if testkit.Listens(n.HostPort()) {
		t.Error("port still open after Kill")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Restart(context.Background()); !errors.Is(err, sshnode.ErrClosed) {
		t.Fatalf("Restart after Close = %v, want ErrClosed", err)
	}
}

func TestNetnsCutRestore(t *testing.T) {
	t.Parallel()
	k, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	n := sshnode.StartT(t, sshnode.Options{Netns: true, AuthorizedKeys: []string{k.AuthorizedKey}})
	ctx := context.Background()
	c, err := dial(n, ssh.PublicKeys(k.Signer), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	out, err := n.Exec(ctx, "ip -br addr")
	if err != nil || !strings.Contains(string(out), n.Addr()) {
		t.Fatalf("Exec in netns: %v %s", err, out)
	}
	if err := n.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = net.DialTimeout("tcp", n.HostPort(), 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial cut node: %v, want timeout", err)
	}
	if err := n.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitErr(t, 5*time.Second, "dial restored node", func() error {
		c, err := dial(n, ssh.PublicKeys(k.Signer), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	name := nsOf(t, n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), name) {
		t.Fatalf("netns %s left after Close", name)
	}
}

// nsOf finds the node's namespace by the address it holds.
func nsOf(t *testing.T, n *sshnode.Node) string {
	out, _ := exec.Command("ip", "netns", "identify", strconv.Itoa(n.Pid())).Output()
	name := strings.TrimSpace(string(out))
	if !strings.HasPrefix(name, sshnode.NetnsPrefix) {
		t.Fatalf("sshd runs in netns %q, want prefix %s", name, sshnode.NetnsPrefix)
	}
	return name
}

func TestReadOnlyHome(t *testing.T) {
	t.Parallel()
	k, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	n := sshnode.StartT(t, sshnode.Options{ReadOnlyHome: true, AuthorizedKeys: []string{k.AuthorizedKey}})
	c, err := dial(n, ssh.PublicKeys(k.Signer), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := run(t, c, `touch "$HOME/.rh-ro-probe" 2>/dev/null && echo writable || echo readonly`)
	if got != "readonly\n" {
		t.Fatalf("home is %q", got)
	}
	if _, err := os.Stat(os.Getenv("HOME")); err != nil {
		t.Fatal(err)
	}
}

func TestMissingSSHD(t *testing.T) {
	_, err := sshnode.Start(context.Background(), sshnode.Options{SSHD: filepath.Join(t.TempDir(), "sshd")})
	if !errors.Is(err, sshnode.ErrNoSSHD) || !strings.Contains(err.Error(), "openssh-server") {
		t.Fatalf("err = %v", err)
	}
}
