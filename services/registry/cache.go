package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
)

// recordCache mirrors the records bucket in memory, fed by a KV watch and by
// the registry's own writes. It makes `list` a memory scan and saves a read
// before each compare-and-set; it is never the authority: a write based on a
// stale entry loses its compare-and-set and is retried from the bucket.
//
// Cached clusters are immutable snapshots; callers that change one clone it.
type recordCache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry
	sorted  []string // names in order; nil when it must be rebuilt
	// changed holds, per watched name, a channel closed at its next change.
	changed map[string]chan struct{}
	// anyChanged is closed at the next change of any record (list watches).
	anyChanged chan struct{}
}

type cacheEntry struct {
	c   *rh.Cluster // nil for a deleted record (a tombstone, so a late put cannot revive it)
	rev uint64
	// summary is c's summary encoded as `list` sends it: encoded once per
	// write rather than once per list.
	summary json.RawMessage
}

func newRecordCache() *recordCache {
	return &recordCache{entries: map[string]cacheEntry{}, changed: map[string]chan struct{}{}, anyChanged: make(chan struct{})}
}

// put stores c at rev unless the cache already holds a newer revision.
func (rc *recordCache) put(name string, c *rh.Cluster, rev uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	old, ok := rc.entries[name]
	if ok && old.rev >= rev {
		return
	}
	if (old.c == nil) != (c == nil) {
		rc.sorted = nil
	}
	e := cacheEntry{c: c, rev: rev}
	if c != nil {
		e.summary, _ = json.Marshal(c.Summary())
	}
	rc.entries[name] = e
	if ch, ok := rc.changed[name]; ok {
		close(ch)
		delete(rc.changed, name)
	}
	close(rc.anyChanged)
	rc.anyChanged = make(chan struct{})
}

// current returns name's cached snapshot (nil after a deletion; read it
// only), its revision, whether the cache knows the name at all, and a
// channel closed at the next change.
func (rc *recordCache) current(name string) (*rh.Cluster, uint64, bool, <-chan struct{}) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ch, ok := rc.changed[name]
	if !ok {
		ch = make(chan struct{})
		rc.changed[name] = ch
	}
	e, known := rc.entries[name]
	return e.c, e.rev, known, ch
}

// revision returns the newest revision the cache holds and a channel
// closed at the next change of any record.
func (rc *recordCache) revision() (uint64, <-chan struct{}) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var top uint64
	for _, e := range rc.entries {
		top = max(top, e.rev)
	}
	return top, rc.anyChanged
}

// namedEntry is a cache entry with its name (c is nil for a deletion).
type namedEntry struct {
	cacheEntry
	name string
}

// since returns the entries written after revision rev (deletions
// included) in revision order, the newest revision, and a channel closed
// at the next change. It scans the whole cache: list watches are few.
func (rc *recordCache) since(rev uint64) ([]namedEntry, uint64, <-chan struct{}) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []namedEntry
	top := rev
	for name, e := range rc.entries {
		if e.rev > rev {
			out = append(out, namedEntry{e, name})
			top = max(top, e.rev)
		}
	}
	slices.SortFunc(out, func(a, b namedEntry) int { return cmp.Compare(a.rev, b.rev) })
	return out, top, rc.anyChanged
}

// get returns a clone the caller may change, and its revision.
func (rc *recordCache) get(name string) (*rh.Cluster, uint64, bool) {
	rc.mu.RLock()
	e, ok := rc.entries[name]
	rc.mu.RUnlock()
	if !ok || e.c == nil {
		return nil, 0, false
	}
	return cloneCluster(e.c), e.rev, true
}

// page returns up to limit clusters after name `after`, in name order, and
// whether more follow. The clusters are shared snapshots: read them only.
func (rc *recordCache) page(after string, limit int) ([]*rh.Cluster, bool) {
	var out []*rh.Cluster
	more := rc.scan(after, func(e cacheEntry) bool {
		if len(out) >= limit {
			return false
		}
		out = append(out, e.c)
		return true
	})
	return out, more
}

// summaryPage returns the encoded summaries of the clusters after `after`
// that visible accepts: at most limit of them and at most maxBytes in all
// (the page is sized before it is sent; one summary is always taken so a
// page is never empty while clusters remain), the name of the last, and
// whether more visible clusters follow.
func (rc *recordCache) summaryPage(after string, limit, maxBytes int, visible func(*rh.Cluster) bool) ([]json.RawMessage, string, bool) {
	var out []json.RawMessage
	size, last := 0, ""
	more := rc.scan(after, func(e cacheEntry) bool {
		if !visible(e.c) {
			return true
		}
		n := len(e.summary) + 1
		if len(out) >= limit || (len(out) > 0 && size+n > maxBytes) {
			return false
		}
		out = append(out, e.summary)
		size += n
		last = e.c.Name
		return true
	})
	return out, last, more
}

// scan calls take for live entries after `after` in name order until it
// returns false (leaving that entry for the next scan), and reports whether
// such an entry was left.
func (rc *recordCache) scan(after string, take func(cacheEntry) bool) bool {
	rc.mu.Lock()
	if rc.sorted == nil {
		rc.sorted = make([]string, 0, len(rc.entries))
		for name, e := range rc.entries {
			if e.c != nil {
				rc.sorted = append(rc.sorted, name)
			}
		}
		slices.Sort(rc.sorted)
	}
	names := rc.sorted
	rc.mu.Unlock()
	i, _ := slices.BinarySearch(names, after)
	if i < len(names) && names[i] == after {
		i++
	}
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	for ; i < len(names); i++ {
		if e := rc.entries[names[i]]; e.c != nil && !take(e) {
			return true
		}
	}
	return false
}

// all returns every cached cluster (shared snapshots) in name order.
func (rc *recordCache) all() []*rh.Cluster {
	var out []*rh.Cluster
	after := ""
	for {
		p, more := rc.page(after, 1<<30)
		out = append(out, p...)
		if !more || len(p) == 0 {
			return out
		}
		after = p[len(p)-1].Name
	}
}

// cloneCluster copies what mutations change, so snapshots stay intact.
func cloneCluster(c *rh.Cluster) *rh.Cluster {
	cp := *c
	cp.History = slices.Clone(c.History)
	cp.Status.Nodes = slices.Clone(c.Status.Nodes)
	cp.Status.Info = maps.Clone(c.Status.Info)
	cp.Shares = maps.Clone(c.Shares)
	return &cp
}

// watch feeds the cache from the bucket until ctx ends. It returns once the
// initial values are in, so a new registry lists everything from its start.
func (s *Service) watchRecords(ctx context.Context) error {
	w, err := s.records.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("registry: watch records: %w", err)
	}
	apply := func(e jetstream.KeyValueEntry) {
		name := strings.TrimPrefix(e.Key(), "cluster.")
		if e.Operation() != jetstream.KeyValuePut {
			s.cache.put(name, nil, e.Revision())
			return
		}
		var c rh.Cluster
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			s.log.Warn("undecodable record in the bucket", "key", e.Key(), "err", err)
			return
		}
		s.cache.put(name, &c, e.Revision())
	}
	for e := range w.Updates() {
		if e == nil {
			break // initial values done
		}
		apply(e)
	}
	s.wg.Go(func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(e)
				}
			}
		}
	})
	return nil
}

// loadForUpdate returns the record to change: the cached one when trusted,
// else a fresh read from the bucket.
func (s *Service) loadForUpdate(ctx context.Context, name string, trustCache bool) (*rh.Cluster, uint64, error) {
	if trustCache {
		if c, rev, ok := s.cache.get(name); ok {
			return c, rev, nil
		}
	}
	c, rev, err := s.load(ctx, name)
	if err == nil {
		s.cache.put(name, cloneCluster(c), rev)
	}
	return c, rev, err
}
