package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/events"
)

// ErrLostRace means a record changed between its Load and its Save: another
// worker holding the same event (after a lease expiry) wrote first. It is
// matched alongside the bucket's own error, so events.IsCASConflict holds too.
var ErrLostRace = errors.New("worker: record changed under us")

// Stamp, embedded in a record type, records when it was last saved.
type Stamp struct {
	At time.Time `json:"at"`
}

func (s *Stamp) stamp(t time.Time) { s.At = t }

// stamped is what embedding Stamp gives a record.
type stamped interface{ stamp(time.Time) }

// Records keeps one record of type T per cluster in a worker's bucket: what
// the worker asked its cloud for, written before it asks, so a worker that
// dies mid-call is replaced by one that resumes instead of asking twice.
// One key per cluster (not per generation) keeps the bucket bounded by the
// number of clusters and lets a teardown find whatever a create started.
type Records[T any] struct {
	kv     jetstream.KeyValue
	prefix string
}

// NewRecords keeps records in kv under prefix+cluster.
func NewRecords[T any](kv jetstream.KeyValue, prefix string) *Records[T] {
	return &Records[T]{kv: kv, prefix: prefix}
}

func (r *Records[T]) key(cluster string) string { return r.prefix + cluster }

// Load returns the cluster's record and its revision (nil, 0 when none).
func (r *Records[T]) Load(ctx context.Context, cluster string) (*T, uint64, error) {
	e, err := r.kv.Get(ctx, r.key(cluster))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("worker: read %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	var rec T
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("worker: decode %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	return &rec, e.Revision(), nil
}

// Save writes rec with compare-and-set against rev (0: it must not exist
// yet) and returns the new revision, so two workers holding the same event
// cannot both claim the cluster's work. Losing the race is ErrLostRace.
func (r *Records[T]) Save(ctx context.Context, cluster string, rec T, rev uint64) (uint64, error) {
	if s, ok := any(&rec).(stamped); ok {
		s.stamp(time.Now().UTC())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("worker: encode %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	if rev == 0 {
		rev, err = r.kv.Create(ctx, r.key(cluster), b)
	} else {
		rev, err = r.kv.Update(ctx, r.key(cluster), b, rev)
	}
	if events.IsCASConflict(err) {
		return 0, fmt.Errorf("worker: write %s record of %s: %w: %w", r.kv.Bucket(), cluster, ErrLostRace, err)
	}
	if err != nil {
		return 0, fmt.Errorf("worker: write %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	return rev, nil
}

// Delete removes the cluster's record; none is not an error.
func (r *Records[T]) Delete(ctx context.Context, cluster string) error {
	if err := r.kv.Purge(ctx, r.key(cluster)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("worker: delete %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	return nil
}
