package worker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/worker"
)

type testRecord struct {
	Generation int64  `json:"generation"`
	State      string `json:"state"`
	worker.Stamp
}

func testRecords(t *testing.T) *worker.Records[testRecord] {
	t.Helper()
	ns := natstest.Start(t)
	kv, err := ns.JS.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "rh_test_records", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return worker.NewRecords[testRecord](kv, "test.")
}

// TestRecordsCompareAndSet: a save against a revision someone else moved on
// from, or a create of a record that exists, is a lost race; the winner's
// record stands, stamped with when it was written.
func TestRecordsCompareAndSet(t *testing.T) {
	ctx := context.Background()
	recs := testRecords(t)

	if rec, rev, err := recs.Load(ctx, "a"); rec != nil || rev != 0 || err != nil {
		t.Fatalf("load of nothing = %v, %d, %v", rec, rev, err)
	}
	rev, err := recs.Save(ctx, "a", testRecord{Generation: 1, State: "pending"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rev  uint64
	}{
		{"a second create", 0},
		{"an update from a stale revision", rev + 7},
	} {
		_, err := recs.Save(ctx, "a", testRecord{Generation: 2}, tc.rev)
		if !errors.Is(err, worker.ErrLostRace) || !events.IsCASConflict(err) {
			t.Errorf("%s: err = %v, want a lost race", tc.name, err)
		}
	}
	if _, err := recs.Save(ctx, "a", testRecord{Generation: 1, State: "up"}, rev); err != nil {
		t.Fatalf("update from the current revision: %v", err)
	}
	rec, _, err := recs.Load(ctx, "a")
	if err != nil || rec.Generation != 1 || rec.State != "up" || rec.At.IsZero() {
		t.Fatalf("record = %+v, %v", rec, err)
	}

	if err := recs.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := recs.Delete(ctx, "a"); err != nil {
		t.Fatalf("deleting nothing: %v", err)
	}
	if rec, _, err := recs.Load(ctx, "a"); rec != nil || err != nil {
		t.Fatalf("after delete: %+v, %v", rec, err)
	}
}
