package client

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// ClusterChange is one change of the list WatchList follows.
type ClusterChange struct {
	// Name is the cluster that changed.
	Name string
	// Cluster is its summary after the change; nil when Removed.
	Cluster *rh.ClusterSummary
	// Removed is set when the cluster left the list: deleted, or no longer
	// readable by the caller.
	Removed bool
}

// WatchList returns the summaries of every cluster the caller may read, in
// name order, then sends each change (a new cluster, a changed one, one
// that left) until ctx ends; then the channel closes. The registry streams
// the list in bounded streams; WatchList asks again whenever one ends or
// falls silent and sends only what differs, so the caller sees one unbroken
// sequence. A summary equal to the one last sent is not sent again.
func (c *Client) WatchList(ctx context.Context) ([]rh.ClusterSummary, <-chan ClusterChange, error) {
	st, list, err := c.openList(ctx)
	if err != nil {
		return nil, nil, err
	}
	known := map[string]rh.ClusterSummary{}
	for _, s := range list {
		known[s.Name] = s
	}
	out := make(chan ClusterChange, 64)
	go func() {
		defer close(out)
		emit := func(ch ClusterChange) bool {
			if ch.Removed {
				if _, ok := known[ch.Name]; !ok {
					return true
				}
				delete(known, ch.Name)
			} else {
				if old, ok := known[ch.Name]; ok && reflect.DeepEqual(old, *ch.Cluster) {
					return true
				}
				known[ch.Name] = *ch.Cluster
			}
			select {
			case out <- ch:
				return true
			case <-ctx.Done():
				return false
			}
		}
		backoff := 50 * time.Millisecond
		for {
			if !st.followList(ctx, emit) {
				st.close()
				return
			}
			st.close()
			// Ask again; what changed meanwhile is the difference of lists.
			for {
				var fresh []rh.ClusterSummary
				if st, fresh, err = c.openList(ctx); err == nil {
					backoff = 50 * time.Millisecond
					seen := map[string]bool{}
					for _, s := range fresh {
						seen[s.Name] = true
						if !emit(ClusterChange{Name: s.Name, Cluster: &s}) {
							st.close()
							return
						}
					}
					for _, name := range slices.Sorted(maps.Keys(known)) {
						if !seen[name] && !emit(ClusterChange{Name: name, Removed: true}) {
							st.close()
							return
						}
					}
					break
				}
				if ctx.Err() != nil || rh.ErrorCode(err) == rh.EFORBIDDEN || rh.ErrorCode(err) == rh.EINVALID {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
			}
		}
	}()
	return list, out, nil
}

// openList asks for a list watch and reads the list up to "synced".
func (c *Client) openList(ctx context.Context) (*watchStream, []rh.ClusterSummary, error) {
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, nil, fmt.Errorf("client: watch list: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	st := &watchStream{sub: sub}
	if err := c.nc.PublishRequest(api.WatchListSubject, inbox, []byte("{}")); err != nil {
		st.close()
		return nil, nil, fmt.Errorf("client: watch list: %w", err)
	}
	list := []rh.ClusterSummary{}
	for {
		fctx, cancel := context.WithTimeout(ctx, c.timeout)
		m, err := sub.NextMsgWithContext(fctx)
		cancel()
		if err != nil {
			st.close()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("%s did not answer in time: is the registry running?", api.WatchListSubject), Err: err}
		}
		if m.Header.Get("Status") == "503" {
			st.close()
			return nil, nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "no registry answers on " + api.WatchListSubject + ": is `rhcli serve` running with it?"}
		}
		if err := watchError(m); err != nil {
			st.close()
			return nil, nil, err
		}
		var wm api.WatchListMessage
		if len(m.Data) == 0 || json.Unmarshal(m.Data, &wm) != nil {
			st.close()
			return nil, nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "the list watch ended before the list was sent"}
		}
		switch wm.Type {
		case api.WatchListPage:
			list = append(list, wm.Clusters...)
		case api.WatchListSynced:
			return st, list, nil
		}
	}
}

// followList hands the stream's changes to emit. It reports whether to ask
// for a new stream (this one ended or fell silent); false when ctx ended or
// emit gave up.
func (st *watchStream) followList(ctx context.Context, emit func(ClusterChange) bool) bool {
	for {
		ictx, cancel := context.WithTimeout(ctx, api.WatchIdle)
		m, err := st.sub.NextMsgWithContext(ictx)
		cancel()
		if err != nil {
			return ctx.Err() == nil
		}
		if len(m.Data) == 0 || watchError(m) != nil {
			return true
		}
		var wm api.WatchListMessage
		if json.Unmarshal(m.Data, &wm) != nil {
			continue
		}
		switch wm.Type {
		case api.WatchListChange:
			for i := range wm.Clusters {
				if !emit(ClusterChange{Name: wm.Clusters[i].Name, Cluster: &wm.Clusters[i]}) {
					return false
				}
			}
		case api.WatchListRemoved:
			if !emit(ClusterChange{Name: wm.Name, Removed: true}) {
				return false
			}
		case api.WatchTypeEnd:
			return true
		}
	}
}
