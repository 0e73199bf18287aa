package sshx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// DefaultConnectTimeout bounds a dial (TCP or proxy, plus the SSH
// handshake and authentication) when Target.ConnectTimeout is zero.
const DefaultConnectTimeout = 15 * time.Second

// Target says how to reach and log in to one node. It holds secrets:
// String, GoString and LogValue print only user@host:port and the route.
type Target struct {
	Host string
	Port int // default 22
	User string
	// PrivateKey is a PEM private key (OpenSSH, PKCS#1/8 or SEC1 form).
	PrivateKey []byte
	// Passphrase decrypts PrivateKey when it is encrypted.
	Passphrase []byte
	// Password is tried with the "password" and "keyboard-interactive" methods.
	Password string
	// UseAgent offers the keys of the ssh-agent at $SSH_AUTH_SOCK.
	UseAgent bool
	// ProxyCommand, as in OpenSSH: run with sh -c after expanding %h, %p,
	// %r and %%; its stdin and stdout carry the SSH connection.
	ProxyCommand string
	// JumpHost is reached first; the connection to Host is tunnelled
	// through it (OpenSSH ProxyJump). Exclusive with ProxyCommand.
	JumpHost *Target
	// InsecureIgnoreHostKey accepts any host key without recording it.
	InsecureIgnoreHostKey bool
	// ConnectTimeout bounds the dial; default DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Addr is host:port, the form host keys are recorded under.
func (t Target) Addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// String is user@host:port, followed by the route when there is one.
func (t Target) String() string {
	s := t.Addr()
	if t.User != "" {
		s = t.User + "@" + s
	}
	switch {
	case t.ProxyCommand != "":
		s += " (proxy command)"
	case t.JumpHost != nil:
		s += " via " + t.JumpHost.String()
	}
	return s
}

// GoString keeps %#v from printing secrets.
func (t Target) GoString() string { return "sshx.Target{" + t.String() + "}" }

// LogValue keeps slog from printing secrets.
func (t Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Key identifies a connection by everything that decides who we are to the
// node and which node we accept: user, host, port, route (proxy command or
// jump host, recursively), the credentials (as a keyed hash: the key never
// holds a secret) and the host-key policy. Two targets share a pooled
// connection only when their keys are equal, so a wrong password never rides
// on a connection someone else's right password opened, and a pinned target
// never on one that ignored the host key.
func (t Target) Key() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	k := t.User + "@" + net.JoinHostPort(t.Host, strconv.Itoa(port)) + "#" + t.credentialFingerprint()
	if t.InsecureIgnoreHostKey {
		k += "+insecure-host-key"
	}
	if t.ProxyCommand != "" {
		k += "+proxy:" + t.ProxyCommand
	}
	if t.JumpHost != nil {
		k += "+jump:" + t.JumpHost.Key()
	}
	return k
}

// fingerprintKey keys credential fingerprints: random per process, so a
// fingerprint seen somewhere cannot be used to guess a password offline.
var fingerprintKey = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("sshx: no randomness: " + err.Error())
	}
	return b
}()

// credentialFingerprint is a short keyed hash of the credentials.
func (t Target) credentialFingerprint() string {
	h := hmac.New(sha256.New, fingerprintKey)
	for _, part := range [][]byte{t.PrivateKey, t.Passphrase, []byte(t.Password)} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	if t.UseAgent {
		// The agent's socket is the identity it offers.
		h.Write([]byte("agent:" + os.Getenv("SSH_AUTH_SOCK")))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// ResolveConfig builds a Target for alias from an OpenSSH client config
// file: HostName (with %h), Port, User, the first IdentityFile (read into
// PrivateKey), ProxyCommand and ProxyJump (a comma list becomes a JumpHost
// chain, each hop resolved through the same file). path "" means
// ~/.ssh/config; a missing file yields Target{Host: alias}.
func ResolveConfig(path, alias string) (Target, error) {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return Target{}, fmt.Errorf("sshx: find ~/.ssh/config: %w", err)
		}
		path = filepath.Join(home, ".ssh", "config")
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Target{Host: alias, Port: 22}, nil
	}
	if err != nil {
		return Target{}, fmt.Errorf("sshx: read ssh config: %w", err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return Target{}, fmt.Errorf("sshx: parse ssh config %s: %w", path, err)
	}
	return resolve(cfg, path, alias, 0)
}

func resolve(cfg *ssh_config.Config, path, alias string, depth int) (Target, error) {
	if depth > 8 {
		return Target{}, fmt.Errorf("sshx: ssh config %s: ProxyJump chain for %s too deep", path, alias)
	}
	get := func(key string) string {
		v, _ := cfg.Get(alias, key)
		return strings.TrimSpace(v)
	}
	t := Target{Host: alias, Port: 22, User: get("User")}
	if h := get("HostName"); h != "" {
		t.Host = strings.ReplaceAll(h, "%h", alias)
	}
	if p := get("Port"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return Target{}, fmt.Errorf("sshx: ssh config %s: bad Port %q for %s", path, p, alias)
		}
		t.Port = n
	}
	if ids, _ := cfg.GetAll(alias, "IdentityFile"); len(ids) > 0 {
		p := expandHome(ids[0])
		key, err := os.ReadFile(p)
		if err != nil {
			return Target{}, fmt.Errorf("sshx: ssh config %s: IdentityFile for %s: %w", path, alias, err)
		}
		t.PrivateKey = key
	}
	if pc := get("ProxyCommand"); pc != "" && !strings.EqualFold(pc, "none") {
		t.ProxyCommand = pc
	} else if pj := get("ProxyJump"); pj != "" && !strings.EqualFold(pj, "none") {
		var prev *Target
		for _, hop := range strings.Split(pj, ",") {
			user, hostport, hasUser := strings.Cut(strings.TrimSpace(hop), "@")
			if !hasUser {
				hostport, user = user, ""
			}
			host, port := hostport, ""
			if h, p, err := net.SplitHostPort(hostport); err == nil {
				host, port = h, p
			}
			jt, err := resolve(cfg, path, host, depth+1)
			if err != nil {
				return Target{}, err
			}
			if user != "" {
				jt.User = user
			}
			if port != "" {
				if jt.Port, err = strconv.Atoi(port); err != nil {
					return Target{}, fmt.Errorf("sshx: ssh config %s: bad ProxyJump port in %q", path, hop)
				}
			}
			// Hops listed later are reached through the earlier ones.
			if jt.JumpHost == nil && jt.ProxyCommand == "" {
				jt.JumpHost = prev
			}
			prev = &jt
		}
		t.JumpHost = prev
	}
	return t, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}
