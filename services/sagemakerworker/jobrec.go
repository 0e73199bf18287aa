package sagemakerworker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/ssh"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
)

// Job record states.
const (
	// stateLaunching: this generation's job is named and its create may
	// have reached AWS (a crash in between leaves only this trace, and
	// Launch adopts the job on the next attempt).
	stateLaunching = "launching"
	// stateLaunched: AWS answered the create (or it was adopted).
	stateLaunched = "launched"
	// stateUp: the job reached Training and the cluster was reported Up.
	stateUp = "up"
)

// jobRecord is the value of a cluster's key in rh_sm_jobs. One key per
// cluster (not per generation) keeps the bucket bounded by the number of
// clusters and lets a teardown or refresh, whose intents carry their own
// generation, find the job whatever generation started it.
type jobRecord struct {
	Generation   int64     `json:"generation"`
	Job          string    `json:"job"`
	ARN          string    `json:"arn,omitempty"`
	State        string    `json:"state"`
	Estimator    bool      `json:"estimator,omitempty"`
	InstanceType string    `json:"instance_type,omitempty"`
	Instances    int       `json:"instances,omitempty"`
	At           time.Time `json:"at"`
}

func jobKey(cluster string) string { return "job." + cluster }

// loadJob returns the cluster's record and its revision (nil, 0 when none).
func (s *Service) loadJob(ctx context.Context, cluster string) (*jobRecord, uint64, error) {
	e, err := s.jobs.Get(ctx, jobKey(cluster))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("sagemakerworker: read job record of %s: %w", cluster, err)
	}
	var rec jobRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("sagemakerworker: decode job record of %s: %w", cluster, err)
	}
	return &rec, e.Revision(), nil
}

// saveJob writes rec with compare-and-set against rev (0: must not exist),
// so two workers holding the same event after a lease expiry cannot both
// claim a cluster's job.
func (s *Service) saveJob(ctx context.Context, cluster string, rec jobRecord, rev uint64) (uint64, error) {
	rec.At = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("sagemakerworker: encode job record: %w", err)
	}
	if rev == 0 {
		rev, err = s.jobs.Create(ctx, jobKey(cluster), b)
	} else {
		rev, err = s.jobs.Update(ctx, jobKey(cluster), b, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("sagemakerworker: write job record of %s: %w", cluster, err)
	}
	return rev, nil
}

func (s *Service) deleteJob(ctx context.Context, cluster string) error {
	if err := s.jobs.Purge(ctx, jobKey(cluster)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("sagemakerworker: delete job record of %s: %w", cluster, err)
	}
	return nil
}

// forget removes what rh keeps about a cluster whose job has ended.
func (s *Service) forget(ctx context.Context, cluster string) error {
	if err := s.deleteJob(ctx, cluster); err != nil {
		return err
	}
	if err := s.secrets.Purge(ctx, events.ClusterKey(cluster)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("sagemakerworker: remove the key of %s: %w", cluster, err)
	}
	return nil
}

// ensureKey returns the authorized_keys line of the cluster's SSH key,
// generating an ed25519 pair and storing its private half in rh_secrets when
// there is none. The key is stored before the job is created and reused by
// every later attempt, so a job adopted after a crash accepts the key rh
// holds. ed25519 because a job's Environment values are at most 512
// characters (an RSA-4096 public key is ~725).
func (s *Service) ensureKey(ctx context.Context, cluster string) (string, error) {
	key := events.ClusterKey(cluster)
	for range 3 {
		e, err := s.secrets.Get(ctx, key)
		switch {
		case err == nil:
			var sec rh.Secrets
			if jerr := json.Unmarshal(e.Value(), &sec); jerr == nil && sec.SSHPrivateKey != "" {
				if signer, perr := ssh.ParsePrivateKey([]byte(sec.SSHPrivateKey)); perr == nil {
					return authorizedKey(signer.PublicKey(), cluster), nil
				}
			}
			// Unusable (not ours, or damaged): replace it.
			pub, b, gerr := newKey(cluster)
			if gerr != nil {
				return "", gerr
			}
			if _, err := s.secrets.Update(ctx, key, b, e.Revision()); err == nil {
				return pub, nil
			} else if !events.IsCASConflict(err) {
				return "", fmt.Errorf("sagemakerworker: store the key of %s: %w", cluster, err)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
			pub, b, gerr := newKey(cluster)
			if gerr != nil {
				return "", gerr
			}
			if _, err := s.secrets.Create(ctx, key, b); err == nil {
				return pub, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) && !events.IsCASConflict(err) {
				return "", fmt.Errorf("sagemakerworker: store the key of %s: %w", cluster, err)
			}
		default:
			return "", fmt.Errorf("sagemakerworker: read the key of %s: %w", cluster, err)
		}
		// Another attempt stored one meanwhile: use that.
	}
	return "", fmt.Errorf("sagemakerworker: the key of %s keeps changing under us", cluster)
}

// newKey generates an ed25519 pair: the authorized_keys line and the
// rh.Secrets JSON holding the OpenSSH private key.
func newKey(cluster string) (string, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, fmt.Errorf("sagemakerworker: generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "rh-"+cluster)
	if err != nil {
		return "", nil, fmt.Errorf("sagemakerworker: encode key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", nil, fmt.Errorf("sagemakerworker: encode public key: %w", err)
	}
	b, err := json.Marshal(rh.Secrets{SSHPrivateKey: string(pem.EncodeToMemory(block))})
	if err != nil {
		return "", nil, fmt.Errorf("sagemakerworker: encode key: %w", err)
	}
	return authorizedKey(sp, cluster), b, nil
}

func authorizedKey(k ssh.PublicKey, cluster string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " rh-" + cluster
}
