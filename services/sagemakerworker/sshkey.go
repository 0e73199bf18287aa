package sagemakerworker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/secrets"
)

// ensureKey returns the authorized_keys line of the cluster's SSH key,
// generating an ed25519 pair and storing its private half in rh_secrets when
// there is none. The key is stored before the job is created and reused by
// every later attempt, so a job adopted after a crash accepts the key rh
// holds. ed25519 because a job's Environment values are at most 512
// characters (an RSA-4096 public key is ~725).
func (s *Service) ensureKey(ctx context.Context, cluster string) (string, error) {
	for range 3 {
		sec, rev, err := s.host.Secrets.Get(ctx, cluster)
		if err != nil && !errors.Is(err, secrets.ErrMalformed) {
			return "", fmt.Errorf("sagemakerworker: read the key of %s: %w", cluster, err)
		}
		if sec != nil && sec.SSHPrivateKey != "" {
			if signer, perr := ssh.ParsePrivateKey([]byte(sec.SSHPrivateKey)); perr == nil {
				return authorizedKey(signer.PublicKey(), cluster), nil
			}
		}
		// None, or unusable (not ours, or damaged): make one.
		pub, priv, err := newKey(cluster)
		if err != nil {
			return "", err
		}
		_, err = s.host.Secrets.PutIfRevision(ctx, cluster, priv, rev)
		if err == nil {
			return pub, nil
		}
		if !events.IsCASConflict(err) {
			return "", fmt.Errorf("sagemakerworker: store the key of %s: %w", cluster, err)
		}
		// Another attempt stored one meanwhile: use that.
	}
	return "", fmt.Errorf("sagemakerworker: the key of %s keeps changing under us", cluster)
}

// newKey generates an ed25519 pair: the authorized_keys line and the
// rh.Secrets holding the OpenSSH private key.
func newKey(cluster string) (string, rh.Secrets, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", rh.Secrets{}, fmt.Errorf("sagemakerworker: generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "rh-"+cluster)
	if err != nil {
		return "", rh.Secrets{}, fmt.Errorf("sagemakerworker: encode key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", rh.Secrets{}, fmt.Errorf("sagemakerworker: encode public key: %w", err)
	}
	return authorizedKey(sp, cluster), rh.Secrets{SSHPrivateKey: string(pem.EncodeToMemory(block))}, nil
}

func authorizedKey(k ssh.PublicKey, cluster string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " rh-" + cluster
}
