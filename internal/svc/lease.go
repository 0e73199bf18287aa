package svc

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leases keeps the lease (AckWait) of every JetStream message a consumer
// holds: from Add until Done each gets InProgress every third of the ack
// wait, from one timer rather than a goroutine per message. Leases can then
// be short, so the messages of a process that died come back to another
// within seconds, while a live process keeps whatever it still works on or
// queues.
type Leases struct {
	every time.Duration
	mu    sync.Mutex
	msgs  map[jetstream.Msg]struct{}
}

// NewLeases keeps the leases of messages whose consumer has ackWait.
func NewLeases(ackWait time.Duration) *Leases {
	return &Leases{every: max(ackWait/3, time.Millisecond), msgs: map[jetstream.Msg]struct{}{}}
}

// Add starts keeping m's lease.
func (l *Leases) Add(m jetstream.Msg) {
	l.mu.Lock()
	l.msgs[m] = struct{}{}
	l.mu.Unlock()
}

// Done stops keeping m's lease (it was acked, naked or terminated).
func (l *Leases) Done(m jetstream.Msg) {
	l.mu.Lock()
	delete(l.msgs, m)
	l.mu.Unlock()
}

// Keep renews the leases until ctx ends.
func (l *Leases) Keep(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.mu.Lock()
			held := slices.Collect(maps.Keys(l.msgs))
			l.mu.Unlock()
			for _, m := range held {
				_ = m.InProgress()
			}
		}
	}
}
