package secrets_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/secrets"
)

// TestStore: secrets round-trip by cluster; a compare-and-set put loses to
// a concurrent writer; a damaged value is reported without quoting it, with
// the revision that lets a caller replace it.
func TestStore(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	store, err := secrets.Open(ctx, ns.JS)
	if err != nil {
		t.Fatal(err)
	}
	if sec, rev, err := store.Get(ctx, "a"); sec != nil || rev != 0 || err != nil {
		t.Fatalf("get of nothing = %v, %d, %v", sec, rev, err)
	}
	rev, err := store.PutIfRevision(ctx, "a", rh.Secrets{SSHPrivateKey: "k1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutIfRevision(ctx, "a", rh.Secrets{SSHPrivateKey: "k2"}, 0); !events.IsCASConflict(err) {
		t.Fatalf("second create: %v, want a conflict", err)
	}
	if sec, got, err := store.Get(ctx, "a"); err != nil || got != rev || sec.SSHPrivateKey != "k1" {
		t.Fatalf("get = %+v, %d, %v", sec, got, err)
	}

	kv, err := ns.JS.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.ClusterKey("b"), []byte(`{"ssh_private_key": "SECRET`)); err != nil {
		t.Fatal(err)
	}
	_, rev, err = store.Get(ctx, "b")
	if !errors.Is(err, secrets.ErrMalformed) || strings.Contains(err.Error(), "SECRET") || rev == 0 {
		t.Fatalf("damaged value: rev %d, %v", rev, err)
	}
	if _, err := store.PutIfRevision(ctx, "b", rh.Secrets{SSHPrivateKey: "k3"}, rev); err != nil {
		t.Fatalf("replacing the damaged value: %v", err)
	}

	if err := store.Put(ctx, "a", rh.Secrets{Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := store.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if sec, _, err := store.Get(ctx, "a"); sec != nil || err != nil {
		t.Fatalf("after delete: %+v, %v", sec, err)
	}
}
