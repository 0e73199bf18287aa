package auth

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
)

// BucketUsers holds one rh.User per key "user.<name>" (events.BucketUsers).
const BucketUsers = "rh_users"

// UserKey is the rh_users key of a user.
func UserKey(name string) string { return "user." + name }

// Directory mirrors rh_users in memory: a KV watch keeps it current, so a
// removed user is refused by every service as soon as the removal lands.
type Directory struct {
	// onChange, when set before the watch starts, is called with the users
	// after the initial load and after every change.
	onChange func([]rh.User)
	mu       sync.RWMutex
	byKey    map[string]rh.User
	byName   map[string]rh.User
	stop     func()
	ready    chan struct{}
}

// StaticDirectory is a directory of fixed users (tests, and callers that
// hold the list themselves).
func StaticDirectory(users ...rh.User) *Directory {
	d := &Directory{byKey: map[string]rh.User{}, byName: map[string]rh.User{}, ready: make(chan struct{})}
	close(d.ready)
	for _, u := range users {
		d.put(u)
	}
	return d
}

// WatchDirectory mirrors kv until Stop. It returns once the current users
// are loaded; ctx bounds only that. onChange, when not nil, is called (on the
// watch's goroutine) with every user after the load and after each change:
// the embedded server reloads its accounts from it.
func WatchDirectory(ctx context.Context, kv jetstream.KeyValue, onChange func([]rh.User)) (*Directory, error) {
	d := &Directory{onChange: onChange, byKey: map[string]rh.User{}, byName: map[string]rh.User{}, ready: make(chan struct{})}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := kv.Watch(wctx, "user.*", jetstream.IncludeHistory())
	if err != nil {
		cancel()
		return nil, errorf("watch %s: %w", BucketUsers, err)
	}
	d.stop = func() { cancel(); _ = w.Stop() }
	go d.follow(wctx, w)
	select {
	case <-d.ready:
		return d, nil
	case <-ctx.Done():
		d.stop()
		return nil, errorf("load %s: %w", BucketUsers, ctx.Err())
	}
}

func (d *Directory) follow(ctx context.Context, w jetstream.KeyWatcher) {
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				if initial {
					initial = false
					d.changed()
					close(d.ready)
				}
				continue
			}
			name := e.Key()[len("user."):]
			var u rh.User
			switch {
			case e.Operation() != jetstream.KeyValuePut:
				d.remove(name)
			case json.Unmarshal(e.Value(), &u) != nil || u.Name != name || !u.Role.Valid():
				d.remove(name)
			default:
				d.put(u)
			}
			if !initial {
				d.changed()
			}
		}
	}
}

func (d *Directory) changed() {
	if d.onChange != nil {
		d.onChange(d.Users())
	}
}

func (d *Directory) put(u rh.User) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.byName[u.Name]; ok {
		delete(d.byKey, old.Key)
	}
	d.byName[u.Name] = u
	d.byKey[u.Key] = u
}

func (d *Directory) remove(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.byName[name]; ok {
		delete(d.byKey, old.Key)
		delete(d.byName, name)
	}
}

// ByKey finds the user with an nkey.
func (d *Directory) ByKey(key string) (rh.User, bool) {
	if d == nil || key == "" {
		return rh.User{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.byKey[key]
	return u, ok
}

// ByName finds a user by name.
func (d *Directory) ByName(name string) (rh.User, bool) {
	if d == nil {
		return rh.User{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.byName[name]
	return u, ok
}

// Users lists the users known now.
func (d *Directory) Users() []rh.User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]rh.User, 0, len(d.byName))
	for _, u := range d.byName {
		out = append(out, u)
	}
	return out
}

// Stop ends the watch.
func (d *Directory) Stop() {
	if d != nil && d.stop != nil {
		d.stop()
	}
}

// ErrUserExists is returned by Store.Add for a name already taken.
var ErrUserExists = errors.New("auth: user exists")
