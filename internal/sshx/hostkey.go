package sshx

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyStore remembers each node's host key for trust on first use. The
// gateway implements it on a KV bucket; MemoryHostKeys serves tests.
// hostport is Target.Addr(): the address as the user named it, so a node
// behind a proxy is recorded under its own name, not the proxy's.
type HostKeyStore interface {
	Lookup(ctx context.Context, hostport string) (key ssh.PublicKey, found bool, err error)
	Record(ctx context.Context, hostport string, key ssh.PublicKey) error
}

// HostKeyInfo tells what happened to the host key during a dial.
type HostKeyInfo struct {
	// Fingerprint is the SHA256 fingerprint of the key the node offered.
	Fingerprint string
	// FirstUse is true when the key was unknown and has just been
	// recorded: show Fingerprint to the user.
	FirstUse bool
	// Ignored is true when the target skipped verification.
	Ignored bool
}

// Fingerprint returns key's SHA256 fingerprint as OpenSSH prints it.
func Fingerprint(key ssh.PublicKey) string { return ssh.FingerprintSHA256(key) }

// MemoryHostKeys is an in-memory HostKeyStore. The zero value is ready.
type MemoryHostKeys struct {
	mu   sync.Mutex
	keys map[string]ssh.PublicKey
}

func (m *MemoryHostKeys) Lookup(_ context.Context, hostport string) (ssh.PublicKey, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[hostport]
	return k, ok, nil
}

func (m *MemoryHostKeys) Record(_ context.Context, hostport string, key ssh.PublicKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]ssh.PublicKey{}
	}
	m.keys[hostport] = key
	return nil
}

// Forget drops a recorded key, as after a machine was reinstalled.
func (m *MemoryHostKeys) Forget(hostport string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, hostport)
}

// hostKeyAlgorithms restricts negotiation to the recorded key's type so a
// node holding several host keys is not mistaken for a changed one.
func hostKeyAlgorithms(k ssh.PublicKey) []string {
	switch k.Type() {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	default:
		return []string{k.Type()}
	}
}

// tofu verifies against want (nil: unknown, record it) and fills info.
func tofu(ctx context.Context, store HostKeyStore, hostport string, want ssh.PublicKey, info *HostKeyInfo) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		info.Fingerprint = Fingerprint(key)
		if want == nil {
			if err := store.Record(ctx, hostport, key); err != nil {
				return &Error{Op: "record host key of", Target: hostport, Err: err}
			}
			info.FirstUse = true
			return nil
		}
		if !bytes.Equal(want.Marshal(), key.Marshal()) {
			return &HostKeyMismatchError{Host: hostport, Want: Fingerprint(want), Got: info.Fingerprint}
		}
		return nil
	}
}

// pinnedHostKeys trusts only keys given up front; see PinnedHostKeys.
type pinnedHostKeys map[string][]ssh.PublicKey

// PinnedHostKeys is a HostKeyStore of the keys in known_hosts lines (as
// rh's gateway hands them out) that trusts nothing on first use: a host
// without a line is refused, so a client connects only to the machines
// whose keys rh recorded.
func PinnedHostKeys(lines []string) (HostKeyStore, error) {
	p := pinnedHostKeys{}
	for _, line := range lines {
		rest := []byte(line)
		for len(bytes.TrimSpace(rest)) > 0 {
			_, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
			if err != nil {
				return nil, fmt.Errorf("sshx: known_hosts line %q: %w", line, err)
			}
			// The line's hosts are in known_hosts form already (normalizing
			// again would split "sagemaker-training-job:<job>_algo-1").
			for _, h := range hosts {
				p[h] = append(p[h], key)
			}
			rest = next
		}
	}
	return p, nil
}

func (p pinnedHostKeys) Lookup(_ context.Context, hostport string) (ssh.PublicKey, bool, error) {
	keys := p[knownhosts.Normalize(hostport)]
	if len(keys) == 0 {
		return nil, false, nil
	}
	return keys[0], true, nil
}

// Record refuses: first use is trusted only where the key is recorded for
// everyone (the gateway), never silently on a client.
func (p pinnedHostKeys) Record(_ context.Context, hostport string, _ ssh.PublicKey) error {
	return fmt.Errorf("no host key was recorded for %s, and keys are trusted only as rh recorded them: bring the cluster up first (`rhcli cluster up`)", hostport)
}
