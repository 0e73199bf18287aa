package sshx

import (
	"bytes"
	"context"
	"net"
	"sync"

	"golang.org/x/crypto/ssh"
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
