package registry

import (
	"context"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
)

func (s *Service) reconcileLoop(ctx context.Context) {
	t := s.newTicker()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reconcile(ctx)
		}
	}
}

// Reconcile runs one pass: it publishes again every intent that no worker has
// observed for a while (a publish lost to a crash or an outage), asks the
// workers to refresh every live cluster, and counts clusters by phase and kind.
func (s *Service) Reconcile(ctx context.Context) {
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
