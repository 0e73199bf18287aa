package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/events"
)

// ErrLostRace means a record changed between its Load and its Save: another
// worker holding the same event (after a lease expiry) wrote first. It is
// matched alongside the bucket's own error, so events.IsCASConflict holds too.
var ErrLostRace = errors.New("worker: record changed under us")

// Stamp, embedded in a record type, records when it was last written and
// which worker process is carrying out an operation on it.
type Stamp struct {
	// At is when the record was last written: by a save, or by its owner's
	// heartbeat while the operation runs.
	At time.Time `json:"at"`
	// Owner is the worker process (Config.ID plus an instance suffix) whose
	// operation holds the record; empty once the operation ended.
	Owner string `json:"owner,omitempty"`
}

func (s *Stamp) stamp(t time.Time, owner string) { s.At, s.Owner = t, owner }
func (s *Stamp) owner() string                   { return s.Owner }

// stamped is what embedding Stamp gives a record.
type stamped interface {
	stamp(at time.Time, owner string)
	owner() string
}

// Records keeps one record of type T per cluster in a worker's bucket: what
// the worker asked its cloud for, written before it asks, so a worker that
// dies mid-call is replaced by one that resumes instead of asking twice.
// One key per cluster (not per generation) keeps the bucket bounded by the
// number of clusters and lets a teardown find whatever a create started.
//
// Records bound by a Host also carry an owner and a heartbeat (T embeds
// Stamp): a record saved during an operation names this process as its
// owner and is rewritten every Config.Heartbeat while the operation runs, so
// Acquire in another process tells an owner that is alive (and maybe slow)
// from one that died, and adopts only the latter. Every write is a
// compare-and-set, so a displaced owner learns at its next write, and the
// Host interrupts its operation with ErrTakenOver.
type Records[T any] struct {
	kv     jetstream.KeyValue
	prefix string

	// Set by a Host (own); zero: no heartbeats, Acquire never waits.
	id         string
	staleAfter time.Duration
	log        *slog.Logger

	mu   sync.Mutex
	held map[string]*holding[T]
}

// holding is a record this process owns while an operation on it runs.
type holding[T any] struct {
	mu  sync.Mutex
	rev uint64 // the record's revision, written by us; 0: nothing written yet
	// beaten are revisions that only our heartbeats replaced: the operation
	// may still Save against them (they stand for rev).
	beaten map[uint64]bool
	val    T
	lost   func() // called once when another worker took the record
	taken  bool   // another worker took it: Confirm must fail from now on
}

// NewRecords keeps records in kv under prefix+cluster.
func NewRecords[T any](kv jetstream.KeyValue, prefix string) *Records[T] {
	return &Records[T]{kv: kv, prefix: prefix, held: map[string]*holding[T]{}, log: slog.Default()}
}

// own makes the records owned by the process id: saves name it, and Acquire
// waits for other owners until their heartbeat is staleAfter old.
func (r *Records[T]) own(id string, staleAfter time.Duration, log *slog.Logger) {
	r.id, r.staleAfter, r.log = id, staleAfter, log
}

func (r *Records[T]) key(cluster string) string { return r.prefix + cluster }

// Load returns the cluster's record and its revision (nil, 0 when none).
func (r *Records[T]) Load(ctx context.Context, cluster string) (*T, uint64, error) {
	rec, e, err := r.load(ctx, cluster)
	if rec == nil || err != nil {
		return nil, 0, err
	}
	return rec, e.Revision(), nil
}

func (r *Records[T]) load(ctx context.Context, cluster string) (*T, jetstream.KeyValueEntry, error) {
	e, err := r.kv.Get(ctx, r.key(cluster))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("worker: read %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	var rec T
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, nil, fmt.Errorf("worker: decode %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	return &rec, e, nil
}

// Acquire loads the cluster's record for an operation that must not run in
// two workers at once (a create that may call its cloud), and makes this
// process its owner. While another worker owns it and its heartbeat is
// fresh, Acquire waits: that owner is alive, perhaps slow, and still at
// work. A record whose owner stopped beating (it died) or released it is
// adopted with a compare-and-set, which a concurrent adopter loses. It
// returns nil, 0 when there is no record (the caller's Save against 0
// claims the cluster). Outside a Host it is Load.
func (r *Records[T]) Acquire(ctx context.Context, cluster string) (*T, uint64, error) {
	if r.id == "" {
		return r.Load(ctx, cluster)
	}
	waiting := ""
	for {
		rec, e, err := r.load(ctx, cluster)
		if rec == nil || err != nil {
			return nil, 0, err
		}
		owner := ""
		if s, ok := any(rec).(stamped); ok {
			owner = s.owner()
		}
		age := time.Since(e.Created())
		if owner == "" || owner == r.id || age >= r.staleAfter {
			rev, err := r.Save(ctx, cluster, *rec, e.Revision())
			if errors.Is(err, ErrLostRace) {
				continue // someone wrote meanwhile: look again
			}
			if err != nil {
				return nil, 0, err
			}
			if owner != "" && owner != r.id {
				r.log.Info("adopted an operation whose owner stopped beating", "cluster", cluster,
					"owner", owner, "heartbeat_age", age.Round(time.Millisecond).String())
			}
			return r.reload(rec), rev, nil
		}
		if waiting != owner {
			waiting = owner
			r.log.Info("another worker is at work on this cluster; waiting for it to finish or stop beating",
				"cluster", cluster, "owner", owner, "heartbeat_age", age.Round(time.Millisecond).String())
		}
		// Poll a few times per stale period: soon enough to adopt promptly.
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("worker: waiting for %s to release %s: %w", owner, cluster, context.Cause(ctx))
		case <-time.After(max(r.staleAfter/10, 10*time.Millisecond)):
		}
	}
}

// reload returns rec as Save wrote it (stamped with this owner).
func (r *Records[T]) reload(rec *T) *T {
	if s, ok := any(rec).(stamped); ok {
		s.stamp(time.Now().UTC(), r.id)
	}
	return rec
}

// Save writes rec with compare-and-set against rev (0: it must not exist
// yet) and returns the new revision, so two workers holding the same event
// cannot both claim the cluster's work. Losing the race is ErrLostRace.
// During a Host's operation the record names this process as its owner and
// is kept alive by heartbeats; rev may be one the heartbeats replaced.
func (r *Records[T]) Save(ctx context.Context, cluster string, rec T, rev uint64) (uint64, error) {
	h := r.holding(cluster)
	if h == nil {
		return r.write(ctx, cluster, rec, rev, "")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rev != 0 && (rev == h.rev || h.beaten[rev]) {
		rev = h.rev
	}
	nrev, err := r.write(ctx, cluster, rec, rev, r.id)
	switch {
	case errors.Is(err, ErrLostRace):
		h.loseLocked()
	case err == nil:
		h.rev, h.val, h.beaten = nrev, rec, map[uint64]bool{}
	}
	return nrev, err
}

func (r *Records[T]) write(ctx context.Context, cluster string, rec T, rev uint64, owner string) (uint64, error) {
	if s, ok := any(&rec).(stamped); ok {
		s.stamp(time.Now().UTC(), owner)
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

// Confirm rewrites the record this operation owns, now, with
// compare-and-set: call it right before a cloud call that must not be made
// twice. ErrLostRace means another worker adopted the record (this process
// stalled past the stale period; also once a heartbeat found that out) and
// the call must not be made. Without a record saved by this operation it
// does nothing.
func (r *Records[T]) Confirm(ctx context.Context, cluster string) error {
	h := r.holding(cluster)
	if h == nil {
		return nil
	}
	return r.beat(ctx, cluster, h)
}

// Delete removes the cluster's record; none is not an error.
func (r *Records[T]) Delete(ctx context.Context, cluster string) error {
	if h := r.holding(cluster); h != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.rev, h.beaten = 0, nil // nothing left to beat or release
	}
	if err := r.kv.Purge(ctx, r.key(cluster)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("worker: delete %s record of %s: %w", r.kv.Bucket(), cluster, err)
	}
	return nil
}

func (r *Records[T]) holding(cluster string) *holding[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[cluster]
}

// hold starts an operation on cluster: records it saves are owned by this
// process until release. lost is called (once) if another worker adopts the
// record meanwhile. One cluster's operations run one at a time (the loop's
// slots), so there is at most one holding per cluster.
func (r *Records[T]) hold(cluster string, lost func()) *holding[T] {
	h := &holding[T]{lost: lost}
	if r.id == "" {
		return h // not owned: no heartbeats
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held[cluster] = h
	return h
}

// beat rewrites the held record, unchanged but for its stamp: the heartbeat
// that tells other workers the owner is alive.
func (r *Records[T]) beat(ctx context.Context, cluster string, h *holding[T]) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.taken {
		return fmt.Errorf("worker: %s record of %s: %w: another worker adopted it", r.kv.Bucket(), cluster, ErrLostRace)
	}
	if h.rev == 0 || h.lost == nil {
		return nil
	}
	nrev, err := r.write(ctx, cluster, h.val, h.rev, r.id)
	if errors.Is(err, ErrLostRace) {
		h.loseLocked()
		return err
	}
	if err != nil {
		return err // the bus is slow or away: beat again next time
	}
	h.beaten[h.rev] = true
	h.rev = nrev
	return nil
}

// release ends the operation: the record, if this process still owns it,
// is written once more without an owner, so the next operation on the
// cluster need not wait for the heartbeat to go stale.
func (r *Records[T]) release(ctx context.Context, cluster string, h *holding[T]) {
	r.mu.Lock()
	if r.held[cluster] == h {
		delete(r.held, cluster)
	}
	r.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rev == 0 || h.lost == nil {
		return
	}
	if _, err := r.write(ctx, cluster, h.val, h.rev, ""); err != nil && !errors.Is(err, ErrLostRace) {
		// Others adopt it once the heartbeat is stale.
		r.log.Warn("cannot release a record; it is free once its heartbeat is stale", "cluster", cluster, "err", err)
	}
	h.rev, h.lost = 0, nil
}

func (h *holding[T]) loseLocked() {
	if h.rev != 0 && h.lost != nil {
		h.lost()
		h.taken = true
	}
	h.rev, h.lost = 0, nil
}
