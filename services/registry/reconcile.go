package registry

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/svc"
)

// unpublishedIntents are clusters whose intent publish failed (a stream
// electing a leader after a NATS node died, say). Waiting for the next
// reconcile pass would leave them Pending for up to its period; the loop
// retries them with a short backoff instead.
type unpublishedIntents struct {
	mu    sync.Mutex
	names map[string]struct{}
	kick  chan struct{}
}

func (u *unpublishedIntents) add(name string) {
	u.mu.Lock()
	u.names[name] = struct{}{}
	u.mu.Unlock()
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// keep puts names back for the next try, without waking the loop (it is
// the one retrying).
func (u *unpublishedIntents) keep(names []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range names {
		u.names[n] = struct{}{}
	}
}

func (u *unpublishedIntents) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	names := slices.Collect(maps.Keys(u.names))
	clear(u.names)
	return names
}

const (
	intentRetryFirst = 500 * time.Millisecond
	intentRetryMost  = 8 * time.Second
)

func (s *Service) reconcileLoop(ctx context.Context) {
	t := s.newTicker()
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	armed, backoff := false, intentRetryFirst
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return
		case <-t.C:
			s.Reconcile(ctx)
		case <-s.unpublished.kick:
			if !armed {
				retry.Reset(backoff)
				armed = true
			}
		case <-retry.C:
			armed = false
			if s.republishFailed(ctx) {
				backoff = intentRetryFirst
				continue
			}
			backoff = min(2*backoff, intentRetryMost)
			retry.Reset(backoff)
			armed = true
		}
	}
}

// republishFailed publishes again the intents whose publish failed and that
// no worker has observed since; it reports whether none is left.
func (s *Service) republishFailed(ctx context.Context) bool {
	names := s.unpublished.take()
	for i, name := range names {
		c, err := s.freshRecord(ctx, name)
		if errors.Is(err, rh.ErrNotFound) {
			continue // deleted
		}
		if err == nil && (c.Intent.Op == "" || c.Intent.Generation <= c.Status.ObservedGeneration) {
			continue // moved on
		}
		if err == nil {
			err = s.publish(ctx, c.Intent.Op, c, 0)
		}
		if err != nil {
			// The store or the stream still does not answer: the rest would
			// each wait out their own timeout too, so keep them all for the
			// next try.
			if ctx.Err() == nil {
				s.log.Warn("intents still not published; retrying", "clusters", len(names)-i, "first", name, "err", err)
			}
			s.unpublished.keep(names[i:])
			return false
		}
		s.log.Info("intent published after a retry", "cluster", name, "op", c.Intent.Op)
	}
	return true
}

// freshRecord reads a record from the store, not the cache, which may not
// have seen the write that failed to publish yet.
func (s *Service) freshRecord(ctx context.Context, name string) (*rh.Cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, svc.Timeout)
	defer cancel()
	c, _, err := s.load(ctx, name)
	return c, err
}

// Reconcile runs one pass: it publishes again every intent that no worker has
// observed for a while (a publish lost to a crash or an outage), asks the
// workers to refresh every live cluster, counts clusters by phase and kind,
// and takes over the intake follows of a registry that died.
func (s *Service) Reconcile(ctx context.Context) {
	if err := s.adoptFollows(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("reconcile: intake follows", "err", err)
	}
	cs, err := s.all(ctx)
	if err != nil {
		s.log.Warn("reconcile: cannot list clusters", "err", err)
		return
	}
	now := s.now()
	tick := now.UnixNano() / int64(s.cfg.ReconcileEvery)
	for _, c := range cs {
		if c.Intent.Generation > c.Status.ObservedGeneration && now.Sub(c.Intent.At) >= s.cfg.IntentRetryAfter {
			// Same deterministic id: inside the duplicate window this is a no-op.
			if err := s.publish(ctx, c.Intent.Op, c, 0); err != nil {
				s.log.Warn("reconcile: republish failed", "cluster", c.Name, "err", err)
			}
			continue
		}
		if c.Status.Phase.Live() && c.Status.Phase != rh.PhaseTearingDown {
			if err := s.publish(ctx, events.OpRefresh, c, tick); err != nil {
				s.log.Warn("reconcile: refresh failed", "cluster", c.Name, "err", err)
			}
		}
	}
	s.m.setClusters(cs, now)
}
