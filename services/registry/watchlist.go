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

// A list watch (`cluster list --watch`) streams every cluster the caller may
// read: the list in pages, "synced", then each change — like a record watch
// (watch.go), bounded, with heartbeats, for the SDK to chain.

func (s *Service) addWatchList(ctx context.Context, sv micro.Service) error {
	h := micro.HandlerFunc(func(r micro.Request) { s.handleWatchList(ctx, r) })
	return sv.AddEndpoint("watchlist", svc.CountRequests(s.m.requests, "watchlist", h), micro.WithEndpointSubject(api.WatchListSubject))
}

func (s *Service) handleWatchList(ctx context.Context, r micro.Request) {
	if r.Reply() == "" {
		return
	}
	caller, err := s.cfg.Auth.Caller(nats.Header(r.Headers()))
	if err != nil {
		svc.RespondError(r, err)
		return
	}
	if _, err := svc.Decode[struct{}](r.Data()); err != nil {
		svc.RespondError(r, err)
		return
	}
	s.m.watches.Inc()
	svc.Counted(r, "ok")
	d := svc.Detach(s.nc, r)
	s.wg.Go(func() { s.streamList(ctx, d, caller) })
}

// listChange is a list watch message with the summaries as the cache
// encoded them.
type listChange struct {
	Type     string            `json:"type"`
	Clusters []json.RawMessage `json:"clusters,omitempty"`
	Name     string            `json:"name,omitempty"`
}

func (s *Service) streamList(ctx context.Context, r micro.Request, caller rh.Caller) {
	s.m.watching.Inc()
	defer s.m.watching.Dec()
	send := func(m listChange) bool {
		b, err := json.Marshal(m)
		if err != nil {
			return false
		}
		return r.Respond(b) == nil
	}
	visible := func(c *rh.Cluster) bool { return caller.Can(c, rh.AccessRead) }
	// Changes from here on come after the pages (a cluster changed while
	// they are sent comes twice; the later copy is the newer).
	last, changed := s.cache.revision()
	shown := map[string]bool{}
	after := ""
	for {
		page, next, more := s.cache.summaryPage(after, api.MaxListPage, api.MaxListBytes, func(c *rh.Cluster) bool {
			if visible(c) {
				shown[c.Name] = true
				return true
			}
			return false
		})
		if len(page) > 0 && !send(listChange{Type: api.WatchListPage, Clusters: page}) {
			return
		}
		if !more {
			break
		}
		after = next
	}
	if !send(listChange{Type: api.WatchListSynced}) {
		return
	}
	end := time.NewTimer(s.cfg.WatchMaxDuration)
	defer end.Stop()
	beat := time.NewTicker(s.cfg.WatchHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-changed:
		case <-beat.C:
			if !send(listChange{Type: api.WatchTypeHeartbeat}) {
				return
			}
			continue
		case <-end.C:
			send(listChange{Type: api.WatchTypeEnd})
			return
		case <-ctx.Done():
			send(listChange{Type: api.WatchTypeEnd})
			return
		}
		var entries []namedEntry
		entries, last, changed = s.cache.since(last)
		for _, e := range entries {
			var m listChange
			switch {
			case e.c != nil && visible(e.c):
				shown[e.c.Name] = true
				m = listChange{Type: api.WatchListChange, Clusters: []json.RawMessage{e.summary}}
			case shown[e.name]:
				delete(shown, e.name)
				m = listChange{Type: api.WatchListRemoved, Name: e.name}
			default:
				continue
			}
			if !send(m) {
				return
			}
			beat.Reset(s.cfg.WatchHeartbeat)
		}
	}
}
