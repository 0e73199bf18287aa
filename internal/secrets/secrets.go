// Package secrets is the one reader and writer of the rh_secrets bucket:
// each cluster's rh.Secrets (SSH private key, password) under its cluster
// key. The workers store the keys they make or receive, the registry the ones
// a user gives, and the gateway reads them to reach the nodes.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
)

// ErrMalformed means a stored value is not rh.Secrets JSON. Its messages
// never quote the value: it may hold a key.
var ErrMalformed = errors.New("secrets: stored value is not valid JSON")

// Store reads and writes rh.Secrets by cluster name. It is safe for
// concurrent use.
type Store struct {
	kv jetstream.KeyValue
}

// Open binds the rh_secrets bucket, which must exist.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return nil, fmt.Errorf("secrets: bucket %s: %w", events.BucketSecrets, err)
	}
	return New(kv), nil
}

// New is a Store over a bound bucket.
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Get returns a cluster's secrets and their revision; a cluster without any
// has none (nil, 0, nil). A value that does not decode is returned as
// ErrMalformed with its revision, so a caller may replace it.
func (s *Store) Get(ctx context.Context, cluster string) (*rh.Secrets, uint64, error) {
	e, err := s.kv.Get(ctx, events.ClusterKey(cluster))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("secrets: read those of %s: %w", cluster, err)
	}
	var sec rh.Secrets
	if err := json.Unmarshal(e.Value(), &sec); err != nil {
		// The decoder's message could quote the value: keep it out.
		return nil, e.Revision(), fmt.Errorf("%w (cluster %s)", ErrMalformed, cluster)
	}
	return &sec, e.Revision(), nil
}

// Put stores a cluster's secrets whatever was there.
func (s *Store) Put(ctx context.Context, cluster string, sec rh.Secrets) error {
	b, err := json.Marshal(sec)
	if err != nil {
		return fmt.Errorf("secrets: encode those of %s: %w", cluster, err)
	}
	if _, err := s.kv.Put(ctx, events.ClusterKey(cluster), b); err != nil {
		return fmt.Errorf("secrets: store those of %s: %w", cluster, err)
	}
	return nil
}

// PutIfRevision stores a cluster's secrets only if the stored ones are still
// at rev (0: only if there are none), so two writers racing to make a key
// agree on one. Losing the race is an error events.IsCASConflict matches.
func (s *Store) PutIfRevision(ctx context.Context, cluster string, sec rh.Secrets, rev uint64) (uint64, error) {
	b, err := json.Marshal(sec)
	if err != nil {
		return 0, fmt.Errorf("secrets: encode those of %s: %w", cluster, err)
	}
	if rev == 0 {
		rev, err = s.kv.Create(ctx, events.ClusterKey(cluster), b)
	} else {
		rev, err = s.kv.Update(ctx, events.ClusterKey(cluster), b, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("secrets: store those of %s: %w", cluster, err)
	}
	return rev, nil
}

// Delete removes a cluster's secrets; none is not an error.
func (s *Store) Delete(ctx context.Context, cluster string) error {
	if err := s.kv.Purge(ctx, events.ClusterKey(cluster)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("secrets: remove those of %s: %w", cluster, err)
	}
	return nil
}
