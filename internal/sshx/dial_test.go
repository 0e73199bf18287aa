package sshx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func echo(t *testing.T, c *sshx.Client) string {
	t.Helper()
	var out strings.Builder
	code, err := sshx.Run(ctxT(t, 10*time.Second), c, sshx.RunRequest{Command: "echo hello", Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("echo hello: code %d, err %v", code, err)
	}
	return out.String()
}

func TestKeyAuthEachKeyType(t *testing.T) {
	t.Parallel()
	for _, kt := range []sshnode.KeyType{sshnode.KeyEd25519, sshnode.KeyRSA, sshnode.KeyECDSA} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			_, tg := keyNode(t, kt, sshnode.Options{})
			c := dial(t, newDialer(), tg)
			if got := echo(t, c); got != "hello\n" {
				t.Fatalf("got %q", got)
			}
			if hk := c.HostKey(); !hk.FirstUse || !strings.HasPrefix(hk.Fingerprint, "SHA256:") {
				t.Fatalf("host key info = %+v, want first use with a fingerprint", hk)
			}
		})
	}
}

func TestEncryptedKey(t *testing.T) {
	t.Parallel()
	k, _ := sshnode.GenerateUserKey(sshnode.KeyECDSA)
	n := sshnode.StartT(t, sshnode.Options{User: testUser(t), AuthorizedKeys: []string{k.AuthorizedKey}})
	// A legacy encrypted PEM: an OpenSSH-format key (UserKey.EncryptedPEM)
	// costs a bcrypt KDF, over ten seconds under -race on a small machine;
	// the parsing path in sshx is the same.
	der, _ := x509.MarshalECPrivateKey(k.RawKey().(*ecdsa.PrivateKey))
	//lint:ignore SA1019 legacy PEM encryption is what old keys on disk use.
	block, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", der, []byte("pem-phrase"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	tg := targetOf(n, pem.EncodeToMemory(block))
	if _, err = newDialer().Dial(context.Background(), tg); !errors.Is(err, sshx.ErrAuthFailed) || !strings.Contains(err.Error(), "no passphrase") {
		t.Fatalf("no passphrase: err = %v", err)
	}
	tg.Passphrase = []byte("wrong")
	if _, err = newDialer().Dial(context.Background(), tg); !errors.Is(err, sshx.ErrAuthFailed) || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: err = %v", err)
	}
	// A wrong passphrase that the legacy padding check lets through (about
	// one in 256) decrypts to garbage: still a wrong passphrase to the user.
	tg.Passphrase = paddingPassingPassphrase(t, block)
	if _, err = newDialer().Dial(context.Background(), tg); !errors.Is(err, sshx.ErrAuthFailed) || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase %q that passes the padding check: err = %v", tg.Passphrase, err)
	}
	tg.Passphrase = []byte("pem-phrase")
	echo(t, dial(t, newDialer(), tg))
}

// paddingPassingPassphrase finds a wrong passphrase for block whose
// decryption ends in valid padding, so only parsing can reject it.
func paddingPassingPassphrase(t *testing.T, block *pem.Block) []byte {
	for i := range 1 << 16 {
		p := []byte(fmt.Sprintf("wrong-%d", i))
		//lint:ignore SA1019 the legacy format is the one under test.
		if _, err := x509.DecryptPEMBlock(block, p); err == nil {
			return p
		}
	}
	t.Fatal("no wrong passphrase passed the padding check in 65536 tries")
	return nil
}

func TestPasswordAuth(t *testing.T) {
	t.Parallel()
	n := sshnode.StartT(t, sshnode.Options{Password: sshnode.TestPassword})
	tg := sshx.Target{Host: n.Addr(), Port: n.Port(), User: n.User(), Password: sshnode.TestPassword}
	c := dial(t, newDialer(), tg)
	echo(t, c)

	tg.Password = "not-the-password-xyzzy"
	_, err := newDialer().Dial(context.Background(), tg)
	if !errors.Is(err, sshx.ErrAuthFailed) {
		t.Fatalf("wrong password: err = %v, want ErrAuthFailed", err)
	}
	if strings.Contains(err.Error(), tg.Password) || strings.Contains(fmt.Sprintf("%v %+v %#v", tg, tg, tg), tg.Password) {
		t.Fatal("password leaked into an error or a formatted Target")
	}
}

func TestWrongKeyIsAuthFailed(t *testing.T) {
	t.Parallel()
	n, _ := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	other, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	_, err := newDialer().Dial(context.Background(), targetOf(n, other.PrivatePEM))
	if !errors.Is(err, sshx.ErrAuthFailed) {
		t.Fatalf("err = %v, want ErrAuthFailed", err)
	}
	want := fmt.Sprintf("authentication refused for %s@%s: no key or password accepted", n.User(), n.HostPort())
	if err.Error() != want {
		t.Fatalf("message = %q, want %q", err.Error(), want)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatal("key material in error")
	}
	if _, err := newDialer().Dial(context.Background(), sshx.Target{Host: n.Addr(), Port: n.Port(), User: n.User()}); !errors.Is(err, sshx.ErrAuthFailed) {
		t.Fatalf("no credentials: err = %v", err)
	}
}

func TestConnRefusedAndDNS(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	n.Kill()
	_, err := newDialer().Dial(context.Background(), tg)
	if !errors.Is(err, sshx.ErrConnRefused) || !strings.Contains(err.Error(), "connection refused by "+n.User()+"@"+n.HostPort()) {
		t.Fatalf("err = %v, want ErrConnRefused", err)
	}
	tg.Host = "no-such-host.invalid"
	if _, err = newDialer().Dial(context.Background(), tg); !errors.Is(err, sshx.ErrDNS) {
		t.Fatalf("err = %v, want ErrDNS", err)
	}
	tg.Host = "-oProxyCommand=x"
	if _, err = newDialer().Dial(context.Background(), tg); err == nil || !strings.Contains(err.Error(), "invalid host") {
		t.Fatalf("option-like host: err = %v", err)
	}
}

func TestHostKeyChanged(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	keys := &sshx.MemoryHostKeys{}
	d := &sshx.Dialer{HostKeys: keys}
	c := dial(t, d, tg)
	first := c.HostKey()
	if !first.FirstUse || first.Fingerprint != sshx.Fingerprint(n.HostPublicKey()) {
		t.Fatalf("first contact = %+v", first)
	}
	c.Close()
	if again := dial(t, d, tg).HostKey(); again.FirstUse {
		t.Fatal("known key reported as first use")
	}
	if err := n.RotateHostKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := d.Dial(context.Background(), tg)
	var mm *sshx.HostKeyMismatchError
	if !errors.Is(err, sshx.ErrHostKeyChanged) || !errors.As(err, &mm) {
		t.Fatalf("err = %v, want ErrHostKeyChanged", err)
	}
	if mm.Want != first.Fingerprint || mm.Got != sshx.Fingerprint(n.HostPublicKey()) || mm.Host != n.HostPort() {
		t.Fatalf("mismatch = %+v", mm)
	}
	if !strings.Contains(err.Error(), "host key for "+n.HostPort()+" changed") {
		t.Fatalf("message = %q", err)
	}
	keys.Forget(tg.Addr())
	echo(t, dial(t, d, tg))
	// Without a store, only the explicit opt-out connects.
	if _, err := (&sshx.Dialer{}).Dial(context.Background(), tg); err == nil {
		t.Fatal("dial without host key store succeeded")
	}
	tg.InsecureIgnoreHostKey = true
	echo(t, dial(t, &sshx.Dialer{}, tg))
}

func TestProxyCommand(t *testing.T) {
	t.Parallel()
	_, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	tg.ProxyCommand = proxyCommand(t)
	c := dial(t, newDialer(), tg)
	if got := echo(t, c); got != "hello\n" {
		t.Fatalf("got %q", got)
	}

	// Through a working proxy, the node's own answers keep their class:
	// closing the proxy after the failed handshake must not turn them
	// into "proxy command failed: killed".
	other, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	wrongKey := tg
	wrongKey.PrivateKey = other.PrivatePEM
	if _, err := newDialer().Dial(context.Background(), wrongKey); !errors.Is(err, sshx.ErrAuthFailed) {
		t.Fatalf("wrong key through a proxy: err = %v, want ErrAuthFailed", err)
	}
	stranger, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	pinned := &sshx.MemoryHostKeys{}
	if err := pinned.Record(context.Background(), tg.Addr(), mustPublicKey(t, stranger.AuthorizedKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&sshx.Dialer{HostKeys: pinned}).Dial(context.Background(), tg); !errors.Is(err, sshx.ErrHostKeyChanged) {
		t.Fatalf("another host key through a proxy: err = %v, want ErrHostKeyChanged", err)
	}

	tg.ProxyCommand = "echo 'proxy: cannot reach %h' >&2; exit 3"
	_, err := newDialer().Dial(context.Background(), tg)
	if !errors.Is(err, sshx.ErrProxyFailed) || !strings.Contains(err.Error(), "cannot reach "+tg.Host) {
		t.Fatalf("err = %v, want ErrProxyFailed with its stderr", err)
	}
}

func mustPublicKey(t *testing.T, authorizedKey string) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJumpHost(t *testing.T) {
	t.Parallel()
	_, jump := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	target, tg := keyNode(t, sshnode.KeyECDSA, sshnode.Options{})
	tg.JumpHost = &jump
	d := newDialer()
	c := dial(t, d, tg)
	if got := echo(t, c); got != "hello\n" {
		t.Fatalf("got %q", got)
	}
	// The target's host key is recorded under its own address.
	if k, ok, _ := d.HostKeys.Lookup(context.Background(), target.HostPort()); !ok || sshx.Fingerprint(k) != sshx.Fingerprint(target.HostPublicKey()) {
		t.Fatal("target host key not recorded under its address")
	}
	target.Kill()
	_, err := d.Dial(context.Background(), tg)
	if !errors.Is(err, sshx.ErrConnRefused) {
		t.Fatalf("dead target behind jump: err = %v, want ErrConnRefused", err)
	}
}

func TestResolveConfig(t *testing.T) {
	t.Parallel()
	jumpNode, jump := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "id_node")
	jumpKey := filepath.Join(dir, "id_jump")
	os.WriteFile(keyPath, tg.PrivateKey, 0o600)
	os.WriteFile(jumpKey, jump.PrivateKey, 0o600)
	cfg := fmt.Sprintf(`
Host bastion
  HostName %s
  Port %d
  User %s
  IdentityFile %s

Host node1
  HostName %s
  Port %d
  User %s
  IdentityFile %s
  ProxyJump bastion

Host node1-direct
  HostName %s
  Port %d
  User %s
  IdentityFile %s
`, jumpNode.Addr(), jumpNode.Port(), jumpNode.User(), jumpKey, n.Addr(), n.Port(), n.User(), keyPath, n.Addr(), n.Port(), n.User(), keyPath)
	path := filepath.Join(dir, "config")
	os.WriteFile(path, []byte(cfg), 0o600)

	got, err := sshx.ResolveConfig(path, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != n.Addr() || got.Port != n.Port() || got.User != n.User() || string(got.PrivateKey) != string(tg.PrivateKey) {
		t.Fatalf("resolved %v", got)
	}
	if got.JumpHost == nil || got.JumpHost.Host != jumpNode.Addr() || got.JumpHost.Port != jumpNode.Port() {
		t.Fatalf("jump host = %v", got.JumpHost)
	}
	echo(t, dial(t, newDialer(), got))
	direct, err := sshx.ResolveConfig(path, "node1-direct")
	if err != nil || direct.JumpHost != nil {
		t.Fatalf("node1-direct: %v %v", direct, err)
	}
	if unknown, err := sshx.ResolveConfig(path, "elsewhere"); err != nil || unknown.Host != "elsewhere" || unknown.Port != 22 {
		t.Fatalf("unknown alias: %v %v", unknown, err)
	}
}

func TestAgentAuth(t *testing.T) {
	k, _ := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	n := sshnode.StartT(t, sshnode.Options{User: testUser(t), AuthorizedKeys: []string{k.AuthorizedKey}})
	keyring := agent.NewKeyring()
	raw, _ := sshParseRaw(k.PrivatePEM)
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	d := newDialer()
	d.AgentSocket = sock
	echo(t, dial(t, d, sshx.Target{Host: n.Addr(), Port: n.Port(), User: n.User(), UseAgent: true}))
}
