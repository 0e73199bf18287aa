package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/internal/natstest"
)

type ownedRecord struct {
	State string `json:"state"`
	Stamp
}

// twoOwners are two worker processes' views of one records bucket.
func twoOwners(t *testing.T, staleAfter time.Duration) (a, b *Records[ownedRecord]) {
	t.Helper()
	ns := natstest.Start(t)
	kv, err := ns.JS.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "rh_test_owned", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, b = NewRecords[ownedRecord](kv, "op."), NewRecords[ownedRecord](kv, "op.")
	a.own("w/a", staleAfter, slog.Default())
	b.own("w/b", staleAfter, slog.Default())
	return a, b
}

// TestAcquireWaitsForALiveOwnerAndAdoptsADeadOne: while the owner of an
// operation beats, another worker's Acquire waits however long that takes
// (a slow owner is not displaced); once the beats stop, it adopts the
// record, and the old owner learns at its next write that it lost it.
func TestAcquireWaitsForALiveOwnerAndAdoptsADeadOne(t *testing.T) {
	ctx := context.Background()
	stale := 2 * time.Second
	a, b := twoOwners(t, stale)

	var lost atomic.Bool
	ha := a.hold("c", func() { lost.Store(true) })
	rev, err := a.Save(ctx, "c", ownedRecord{State: "submitted"}, 0)
	if err != nil {
		t.Fatal(err)
	}

	type got struct {
		rec *ownedRecord
		err error
	}
	acquired := make(chan got, 1)
	hb := b.hold("c", func() {})
	go func() {
		rec, _, err := b.Acquire(ctx, "c")
		acquired <- got{rec, err}
	}()
	// Beat for well over the stale period: the waiting worker must not adopt.
	for end := time.Now().Add(3 * stale); time.Now().Before(end); {
		if err := a.beat(ctx, "c", ha); err != nil {
			t.Fatalf("a live owner lost its record: %v", err)
		}
		select {
		case g := <-acquired:
			t.Fatalf("adopted from a live owner: %+v, %v", g.rec, g.err)
		case <-time.After(stale / 20):
		}
	}
	// The owner may still save against the revision it knew before its beats.
	if _, err := a.Save(ctx, "c", ownedRecord{State: "submitted-again"}, rev); err != nil {
		t.Fatalf("save after heartbeats: %v", err)
	}

	// The owner dies: no more beats. The waiter adopts.
	var g got
	select {
	case g = <-acquired:
	case <-time.After(10 * stale):
		t.Fatal("a record whose owner stopped beating was never adopted")
	}
	if g.err != nil || g.rec == nil || g.rec.State != "submitted-again" || g.rec.Owner != "w/b" {
		t.Fatalf("adopted %+v, %v", g.rec, g.err)
	}
	if err := a.beat(ctx, "c", ha); !errors.Is(err, ErrLostRace) || !lost.Load() {
		t.Fatalf("the displaced owner's beat = %v (lost %v), want a lost race", err, lost.Load())
	}
	if err := a.Confirm(ctx, "c"); !errors.Is(err, ErrLostRace) {
		t.Fatalf("confirm after losing = %v, want a lost race: the call it guards must not be made", err)
	}

	// Released, the record is free at once for the next operation.
	b.release(ctx, "c", hb)
	rec, _, err := a.Load(ctx, "c")
	if err != nil || rec.Owner != "" {
		t.Fatalf("after release: %+v, %v", rec, err)
	}
	a.hold("c", func() {})
	// Its owner wrote just now: waiting for staleness would outlast ctx.
	actx, cancel := context.WithTimeout(ctx, stale)
	defer cancel()
	if rec, _, err := a.Acquire(actx, "c"); err != nil || rec.Owner != "w/a" {
		t.Fatalf("acquire of a released record: %+v, %v", rec, err)
	}
}
