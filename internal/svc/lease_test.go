package svc_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/svc"
)

// TestLeasesKeepHeldMessagesAndLetGoOfDoneOnes: a message held well past
// its ack wait is not redelivered while its lease is kept; once Done (its
// holder gone without an answer), it comes back after the ack wait.
func TestLeasesKeepHeldMessagesAndLetGoOfDoneOnes(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := ns.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "LEASES", Subjects: []string{"lease.test"}}); err != nil {
		t.Fatal(err)
	}
	const ackWait = 3 * time.Second
	cons, err := ns.JS.CreateOrUpdateConsumer(ctx, "LEASES", jetstream.ConsumerConfig{
		Durable: "holder", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.JS.Publish(ctx, "lease.test", []byte("work")); err != nil {
		t.Fatal(err)
	}
	next := func(wait time.Duration) jetstream.Msg {
		t.Helper()
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(wait))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			return m
		}
		return nil
	}
	m := next(5 * time.Second)
	if m == nil {
		t.Fatal("nothing delivered")
	}
	l := svc.NewLeases(ackWait)
	go l.Keep(ctx)
	l.Add(m)
	// Over twice the ack wait: without the kept lease it would be back.
	if again := next(2*ackWait + time.Second); again != nil {
		t.Fatal("a message whose lease was kept was delivered again")
	}
	l.Done(m)
	again := next(3 * ackWait)
	if again == nil {
		t.Fatal("a message no one holds never came back")
	}
	if md, err := again.Metadata(); err != nil || md.NumDelivered != 2 {
		t.Fatalf("redelivery metadata %+v, %v", md, err)
	}
	_ = again.Ack()
}
