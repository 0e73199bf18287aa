package registry

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/svc"
)

// Users cannot watch the records bucket (no $KV.*, no $JS.API.*), so the
// registry streams a cluster's record to whoever may read it: the current
// record, each change, heartbeats while nothing changes, and an end. The
// stream is bounded (Config.WatchMaxDuration) because the registry cannot
// tell a departed client from a quiet one; the SDK asks again when a stream
// ends, so a long wait is a chain of short streams.

func (s *Service) addWatch(ctx context.Context, sv micro.Service) error {
	h := micro.HandlerFunc(func(r micro.Request) { s.handleWatch(ctx, r) })
	if err := sv.AddEndpoint("watch", svc.CountRequests(s.m.requests, "watch", h), micro.WithEndpointSubject(api.WatchSubject)); err != nil {
		return err
	}
	return nil
}

func (s *Service) handleWatch(ctx context.Context, r micro.Request) {
	if r.Reply() == "" {
		return // nobody to stream to
	}
	caller, err := s.cfg.Auth.Caller(nats.Header(r.Headers()))
	if err != nil {
		svc.RespondError(r, err)
		return
	}
	req, err := svc.Decode[api.NameRequest](r.Data())
	if err == nil {
		err = rh.ValidateName(req.Name)
	}
	if err != nil {
		svc.RespondError(r, err)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, svc.Timeout)
	c, rev, err := s.loadForUpdate(lctx, req.Name, true)
	cancel()
	if err == nil {
		err = caller.Check(c, rh.AccessRead)
	}
	if err != nil {
		svc.RespondError(r, err)
		return
	}
	s.m.watches.Inc()
	svc.Counted(r, "ok")
	// The handler must return: micro serves one endpoint's requests in turn.
	d := svc.Detach(s.nc, r)
	s.wg.Go(func() { s.streamRecord(ctx, d, caller, c, rev) })
}

// streamRecord sends c (at rev) and then each change until the cluster is
// deleted, the caller loses read access, the stream's time is up or the
// registry stops.
func (s *Service) streamRecord(ctx context.Context, r micro.Request, caller rh.Caller, c *rh.Cluster, rev uint64) {
	s.m.watching.Inc()
	defer s.m.watching.Dec()
	send := func(m api.WatchMessage) bool {
		b, err := json.Marshal(m)
		if err != nil {
			s.log.Error("cannot encode watch message", "cluster", c.Name, "err", err)
			return false
		}
		return r.Respond(b) == nil
	}
	end := time.NewTimer(s.cfg.WatchMaxDuration)
	defer end.Stop()
	beat := time.NewTicker(s.cfg.WatchHeartbeat)
	defer beat.Stop()
	if !send(api.WatchMessage{Type: api.WatchTypeRecord, Cluster: c, Revision: rev}) {
		return
	}
	last := rev
	for {
		cur, curRev, known, changed := s.cache.current(c.Name)
		if known && curRev > last {
			last = curRev
			if cur == nil {
				send(api.WatchMessage{Type: api.WatchTypeDeleted})
				return
			}
			if err := caller.Check(cur, rh.AccessRead); err != nil {
				svc.RespondError(r, err) // unshared meanwhile
				return
			}
			if !send(api.WatchMessage{Type: api.WatchTypeRecord, Cluster: cur, Revision: curRev}) {
				return
			}
			beat.Reset(s.cfg.WatchHeartbeat)
			continue
		}
		select {
		case <-changed:
		case <-beat.C:
			if !send(api.WatchMessage{Type: api.WatchTypeHeartbeat}) {
				return
			}
		case <-end.C:
			send(api.WatchMessage{Type: api.WatchTypeEnd})
			return
		case <-ctx.Done():
			send(api.WatchMessage{Type: api.WatchTypeEnd})
			return
		}
	}
}
