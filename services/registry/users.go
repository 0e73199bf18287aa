package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
)

// The users API: the registry is the only writer of the rh_users bucket.
// Every service mirrors it (auth.Directory) to know its callers, and serve
// reloads the embedded server's user list from it, so a removal cuts the
// user off everywhere without a restart.

func requireAdmin(ctx context.Context) error {
	c := auth.CallerFrom(ctx)
	if !c.Admin() {
		return rh.Forbidden("user %q is a %s: only admins manage users", c.User, c.Role)
	}
	return nil
}

// AddUser creates a user with a fresh nkey and answers with its credentials.
// The seed exists only in the answer: rh stores the public key.
func (s *Service) AddUser(ctx context.Context, req api.UserAddRequest) (*api.UserAddReply, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := rh.ValidateUserName("name", req.Name); err != nil {
		return nil, err
	}
	if !req.Role.Valid() {
		return nil, rh.Invalid("role", "%q is not a role: use admin, member or viewer", req.Role)
	}
	pub, seed, err := auth.NewUserKey()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	u := rh.User{Name: req.Name, Role: req.Role, Key: pub, CreatedBy: auth.CallerFrom(ctx).User, CreatedAt: s.now().UTC().Format(time.RFC3339)}
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("registry: encode user %s: %w", u.Name, err)
	}
	if _, err := s.users.Create(ctx, auth.UserKey(u.Name), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, rh.Conflict("user %q already exists", u.Name)
		}
		return nil, fmt.Errorf("registry: store user %s: %w", u.Name, err)
	}
	s.log.Info("user added", "user", u.Name, "role", u.Role, "by", u.CreatedBy)
	return &api.UserAddReply{User: u, Creds: string(auth.CredsText(fmt.Sprintf("rh user %q (%s)", u.Name, u.Role), seed))}, nil
}

// ListUsers lists the users by name.
func (s *Service) ListUsers(ctx context.Context, _ struct{}) (*api.UsersReply, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	us, err := s.allUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rh.User, 0, len(us))
	for _, u := range us {
		out = append(out, u.User)
	}
	return &api.UsersReply{Users: out}, nil
}

// RemoveUser deletes a user. The last admin stays: without one nobody could
// add users again (the local operator included).
func (s *Service) RemoveUser(ctx context.Context, req api.NameRequest) (*struct{}, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := rh.ValidateUserName("name", req.Name); err != nil {
		return nil, err
	}
	// One removal at a time, so two admins removing each other cannot both
	// pass the last-admin check in this registry.
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	us, err := s.allUsers(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(us, func(u storedUser) bool { return u.Name == req.Name })
	if i < 0 {
		return nil, rh.NotFound("no user %q", req.Name)
	}
	target := us[i]
	if target.Role == rh.RoleAdmin {
		others := slices.ContainsFunc(us, func(u storedUser) bool { return u.Role == rh.RoleAdmin && u.Name != target.Name })
		if !others {
			return nil, rh.Conflict("user %q is the last admin: add another admin before removing it", target.Name)
		}
	}
	if err := s.users.Delete(ctx, auth.UserKey(target.Name), jetstream.LastRevision(target.rev)); err != nil {
		if events.IsCASConflict(err) || strings.Contains(err.Error(), "wrong last sequence") {
			return nil, rh.Conflict("user %q changed while removing; try again", target.Name)
		}
		return nil, fmt.Errorf("registry: remove user %s: %w", target.Name, err)
	}
	s.log.Info("user removed", "user", target.Name, "by", auth.CallerFrom(ctx).User)
	return &struct{}{}, nil
}

type storedUser struct {
	rh.User
	rev uint64
}

// allUsers reads every user from the bucket (the authority; there are few).
func (s *Service) allUsers(ctx context.Context) ([]storedUser, error) {
	w, err := s.users.Watch(ctx, "user.*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("registry: list users: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []storedUser
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("registry: list users: %w", ctx.Err())
		}
		if e == nil {
			break // the current values are in
		}
		var u rh.User
		if err := json.Unmarshal(e.Value(), &u); err != nil || auth.UserKey(u.Name) != e.Key() {
			s.log.Warn("undecodable user in the bucket", "key", e.Key(), "err", err)
			continue
		}
		out = append(out, storedUser{User: u, rev: e.Revision()})
	}
	slices.SortFunc(out, func(a, b storedUser) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// userExists checks a share's user. Without authentication there are no
// users to check against: every caller is the operator.
func (s *Service) userExists(ctx context.Context, name string) error {
	if s.cfg.Auth.Insecure() {
		return nil
	}
	_, err := s.users.Get(ctx, auth.UserKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rh.Invalid("user", "no user %q: add it first (rhcli user add)", name)
	}
	if err != nil {
		return fmt.Errorf("registry: read user %s: %w", name, err)
	}
	return nil
}
