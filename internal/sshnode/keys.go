package sshnode

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyType names an SSH user key algorithm the harness can generate.
type KeyType string

const (
	KeyEd25519 KeyType = "ed25519"
	KeyRSA     KeyType = "rsa"   // 3072-bit, as ssh-keygen makes by default
	KeyECDSA   KeyType = "ecdsa" // P-256
)

// UserKey is a generated user key pair in the forms tests and simulators need.
type UserKey struct {
	Type KeyType
	// PrivatePEM is the private key in OpenSSH PEM form, unencrypted.
	PrivatePEM []byte
	// AuthorizedKey is the public key as one authorized_keys line, without newline.
	AuthorizedKey string
	Public        ssh.PublicKey
	Signer        ssh.Signer

	raw crypto.PrivateKey
}

// GenerateUserKey makes a fresh key pair of the given type.
func GenerateUserKey(kt KeyType) (*UserKey, error) {
	var raw crypto.PrivateKey
	var err error
	switch kt {
	case KeyEd25519, "":
		kt = KeyEd25519
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case KeyRSA:
		raw, err = rsa.GenerateKey(rand.Reader, 3072)
	case KeyECDSA:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("sshnode: unknown key type %q", kt)
	}
	if err != nil {
		return nil, fmt.Errorf("sshnode: generate %s key: %w", kt, err)
	}
	block, err := ssh.MarshalPrivateKey(raw, "rhtest")
	if err != nil {
		return nil, fmt.Errorf("sshnode: marshal %s key: %w", kt, err)
	}
	signer, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, fmt.Errorf("sshnode: signer for %s key: %w", kt, err)
	}
	return &UserKey{
		Type:          kt,
		PrivatePEM:    pem.EncodeToMemory(block),
		AuthorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		Public:        signer.PublicKey(),
		Signer:        signer,
		raw:           raw,
	}, nil
}

// EncryptedPEM returns the private key in OpenSSH PEM form protected by passphrase.
func (k *UserKey) EncryptedPEM(passphrase []byte) ([]byte, error) {
	block, err := ssh.MarshalPrivateKeyWithPassphrase(k.raw, "rhtest", passphrase)
	if err != nil {
		return nil, fmt.Errorf("sshnode: encrypt %s key: %w", k.Type, err)
	}
	return pem.EncodeToMemory(block), nil
}

// hostKey generates an ed25519 host key: PEM for sshd and the public half.
func hostKey() (pemBytes []byte, pub ssh.PublicKey, err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sshnode: generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "rhtest-host")
	if err != nil {
		return nil, nil, fmt.Errorf("sshnode: marshal host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("sshnode: host key signer: %w", err)
	}
	return pem.EncodeToMemory(block), signer.PublicKey(), nil
}

// RawKey is the private key as a crypto type (*rsa.PrivateKey,
// *ecdsa.PrivateKey or ed25519.PrivateKey), for loading into an agent.
func (k *UserKey) RawKey() crypto.PrivateKey { return k.raw }
