package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	rh "github.com/rhq/rh"
)

// OperatorName is the local operator's user, made on first start.
const OperatorName = "operator"

// Material is the key material of one rh installation, kept in a directory
// (0700, files 0600): a seed per service user, the local operator's
// credentials and the JetStream encryption key.
type Material struct {
	Dir string
	// ServiceSeeds maps service user names to nkey seeds.
	ServiceSeeds map[string][]byte
	// Operator is the local operator (admin); OperatorCreds its file.
	Operator      rh.User
	OperatorCreds string
	// StoreKey encrypts JetStream's files at rest.
	StoreKey string
}

// Paths inside the material directory.
const (
	OperatorCredsFile = "operator.creds"
	storeKeyFile      = "jetstream.key"
)

// StoreKeyEnv, when set, holds the JetStream encryption key instead of the file.
const StoreKeyEnv = "RH_JETSTREAM_KEY"

// ServiceCredsFile is the credentials file name of a service user.
func ServiceCredsFile(service string) string { return "service-" + service + ".creds" }

// EnsureMaterial loads the material in dir, creating what is missing: on
// first start that is everything. storeKey, when not empty, overrides the
// key file (from RH_JETSTREAM_KEY).
func EnsureMaterial(dir, storeKey string) (*Material, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, errorf("%w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, errorf("%w", err)
	}
	m := &Material{Dir: dir, ServiceSeeds: map[string][]byte{}}
	for _, name := range ServiceNames {
		path := filepath.Join(dir, ServiceCredsFile(name))
		seed, err := ensureSeed(path, "rh service "+name)
		if err != nil {
			return nil, err
		}
		m.ServiceSeeds[name] = seed
	}
	m.OperatorCreds = filepath.Join(dir, OperatorCredsFile)
	seed, err := ensureSeed(m.OperatorCreds, fmt.Sprintf("rh user %q (%s)", OperatorName, rh.RoleAdmin))
	if err != nil {
		return nil, err
	}
	pub, err := PublicKey(seed)
	if err != nil {
		return nil, err
	}
	m.Operator = rh.User{Name: OperatorName, Role: rh.RoleAdmin, Key: pub, CreatedBy: "rhcli serve"}
	if storeKey != "" {
		m.StoreKey = storeKey
	} else {
		path := filepath.Join(dir, storeKeyFile)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			k := make([]byte, 32)
			_, _ = rand.Read(k)
			b = []byte(hex.EncodeToString(k))
			if err := writeSecretFile(path, append(b, '\n')); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, errorf("%w", err)
		}
		m.StoreKey = strings.TrimSpace(string(b))
	}
	return m, nil
}

// ServiceKeys returns the public keys of the service users.
func (m *Material) ServiceKeys() map[string]string {
	out := map[string]string{}
	for name, seed := range m.ServiceSeeds {
		if pub, err := PublicKey(seed); err == nil {
			out[name] = pub
		}
	}
	return out
}

// ServiceCreds is the path of a service user's credentials file.
func (m *Material) ServiceCreds(service string) string {
	return filepath.Join(m.Dir, ServiceCredsFile(service))
}

func ensureSeed(path, who string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		seed, err := ParseCreds(b)
		if err != nil {
			return nil, errorf("%s: %w", path, err)
		}
		return seed, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, errorf("%w", err)
	}
	_, seed, err := NewUserKey()
	if err != nil {
		return nil, err
	}
	if err := writeSecretFile(path, CredsText(who, seed)); err != nil {
		return nil, err
	}
	return seed, nil
}

// writeSecretFile writes b to path with mode 0600, never leaving a wider
// mode behind even for an instant.
func writeSecretFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return errorf("%w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return errorf("%w", err)
	}
	return f.Close()
}

// WriteCredsFile writes a credentials file with mode 0600; it refuses to
// overwrite an existing file.
func WriteCredsFile(path string, b []byte) error { return writeSecretFile(path, b) }

// ReplaceSecretFile writes b to path with mode 0600, replacing what was
// there through a temporary file and a rename, so a reader sees the old
// file or the new one, never half of one or a wider mode.
func ReplaceSecretFile(path string, b []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := writeSecretFile(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return errorf("%w", err)
	}
	return nil
}

// NewUserKey makes a user nkey pair.
func NewUserKey() (pub string, seed []byte, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, errorf("create nkey: %w", err)
	}
	seed, _ = kp.Seed()
	pub, _ = kp.PublicKey()
	return pub, seed, nil
}

// PublicKey is the public half of a user seed.
func PublicKey(seed []byte) (string, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return "", errorf("not an nkey seed: %w", err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

const (
	seedBegin = "-----BEGIN USER NKEY SEED-----"
	seedEnd   = "------END USER NKEY SEED------"
)

// CredsText is a credentials file: a comment saying whose it is, and the
// user's nkey seed in the decorated form NATS tools read (`nats --nkey`).
func CredsText(who string, seed []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s, made %s.\n# Keep this file secret (mode 0600). Use it with rhcli --creds FILE or RH_NATS_CREDS=FILE.\n\n",
		who, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "%s\n%s\n%s\n", seedBegin, seed, seedEnd)
	return b.Bytes()
}

// ParseCreds finds the user nkey seed in a credentials file.
func ParseCreds(b []byte) ([]byte, error) {
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "SU") {
			seed := []byte(line)
			if _, err := nkeys.FromSeed(seed); err == nil {
				return seed, nil
			}
		}
	}
	return nil, errorf("no user nkey seed in the credentials file")
}

// ConnectOptions are the NATS options for a credentials file: a standard
// NATS .creds file (JWT and seed) is used as NATS reads it; an rh file
// (an nkey seed) signs the server's nonce and confines inboxes to the
// user's own prefix, the only one its permissions let it read.
func ConnectOptions(path string) ([]nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errorf("credentials: %w", err)
	}
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		return []nats.Option{nats.UserCredentials(path)}, nil
	}
	seed, err := ParseCreds(b)
	if err != nil {
		return nil, errorf("credentials %s: %w", path, err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, errorf("credentials %s: %w", path, err)
	}
	pub, _ := kp.PublicKey()
	sign := func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }
	return []nats.Option{nats.Nkey(pub, sign), nats.CustomInboxPrefix(InboxPrefix(pub))}, nil
}
