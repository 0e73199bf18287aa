package sshgateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/ssh"

	"github.com/rhq/rh/internal/sshx"
)

// kvHostKeys is sshx.HostKeyStore on KV rh_hostkeys: trust on first use,
// shared by every gateway replica. Values are authorized_keys lines whose
// comment names the cluster that recorded the key ("rh-cluster=NAME"): the
// pin is that cluster's, and trust asks for write access to it.
type kvHostKeys struct{ kv jetstream.KeyValue }

type recorderKey struct{}

// withRecorder marks ctx as a connection made for cluster, so a key
// recorded on first contact names it.
func withRecorder(ctx context.Context, cluster string) context.Context {
	return context.WithValue(ctx, recorderKey{}, cluster)
}

const recorderPrefix = "rh-cluster="

var _ sshx.HostKeyStore = (*kvHostKeys)(nil)

// hostKeyKey maps host:port to a KV key: KV keys cannot hold ':' or
// brackets, so "10.0.0.1:22" is stored as "10.0.0.1=22" (and "[::1]:22" as
// "==1=22"); the port is always the last '='-separated part.
func hostKeyKey(hostport string) string {
	return strings.NewReplacer(":", "=", "[", "", "]", "").Replace(hostport)
}

func (h *kvHostKeys) Lookup(ctx context.Context, hostport string) (ssh.PublicKey, bool, error) {
	e, err := h.kv.Get(ctx, hostKeyKey(hostport))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("host key store: %w", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(e.Value())
	if err != nil {
		return nil, false, fmt.Errorf("host key store: recorded key of %s: %w", hostport, err)
	}
	return k, true, nil
}

// Record stores key unless one is already there: two first contacts racing
// (two replicas, two clusters naming one machine) must agree on the key.
func (h *kvHostKeys) Record(ctx context.Context, hostport string, key ssh.PublicKey) error {
	line := ssh.MarshalAuthorizedKey(key)
	if c, ok := ctx.Value(recorderKey{}).(string); ok && c != "" {
		line = append(bytes.TrimRight(line, "\n"), []byte(" "+recorderPrefix+c+"\n")...)
	}
	_, err := h.kv.Create(ctx, hostKeyKey(hostport), line)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("host key store: %w", err)
	}
	old, found, lerr := h.Lookup(ctx, hostport)
	if lerr != nil {
		return lerr
	}
	if found && bytes.Equal(old.Marshal(), key.Marshal()) {
		return nil
	}
	return &sshx.HostKeyMismatchError{Host: hostport, Want: sshx.Fingerprint(old), Got: sshx.Fingerprint(key)}
}

// Recorder names the cluster that recorded hostport's key ("" for keys
// recorded before pins had owners); found is false when none is recorded.
func (h *kvHostKeys) Recorder(ctx context.Context, hostport string) (cluster string, found bool, err error) {
	e, err := h.kv.Get(ctx, hostKeyKey(hostport))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("host key store: %w", err)
	}
	_, comment, _, _, err := ssh.ParseAuthorizedKey(e.Value())
	if err != nil {
		return "", false, fmt.Errorf("host key store: recorded key of %s: %w", hostport, err)
	}
	c, _ := strings.CutPrefix(comment, recorderPrefix)
	if c == comment {
		c = ""
	}
	return c, true, nil
}

// Forget drops the recorded key of hostport; it reports whether one was there.
func (h *kvHostKeys) Forget(ctx context.Context, hostport string) (bool, error) {
	_, found, err := h.Lookup(ctx, hostport)
	if err != nil || !found {
		return false, err
	}
	if err := h.kv.Delete(ctx, hostKeyKey(hostport)); err != nil {
		return false, fmt.Errorf("host key store: forget %s: %w", hostport, err)
	}
	return true, nil
}

// KnownHostsLine is the known_hosts line pinning hostport's recorded key.
func (h *kvHostKeys) KnownHostsLine(ctx context.Context, hostport string) (string, bool, error) {
	k, found, err := h.Lookup(ctx, hostport)
	if err != nil || !found {
		return "", false, err
	}
	return knownhostsLine(hostport, k), true, nil
}
