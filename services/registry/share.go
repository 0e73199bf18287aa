package registry

import (
	"context"
	"fmt"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/auth"
)

// Share grants a user read or write access to a cluster (Runhouse's
// share). Only the owner or an admin may share; sharing again changes the
// access; sharing with the owner is refused (they have everything already).
func (s *Service) Share(ctx context.Context, req api.ShareRequest) (*api.ClusterReply, error) {
	if err := rh.ValidateName(req.Name); err != nil {
		return nil, err
	}
	if err := rh.ValidateUserName("user", req.User); err != nil {
		return nil, err
	}
	if !req.Access.Valid() {
		return nil, rh.Invalid("access", "%q is not an access level: use read or write", req.Access)
	}
	if err := s.userExists(ctx, req.User); err != nil {
		return nil, err
	}
	c, err := s.mutate(ctx, req.Name, func(c *rh.Cluster) (bool, error) {
		if err := s.mayShare(ctx, c); err != nil {
			return false, err
		}
		if req.User == c.Owner {
			return false, rh.Invalid("user", "%q owns cluster %q: an owner needs no share", req.User, c.Name)
		}
		if c.Shares[req.User] == req.Access {
			return false, nil
		}
		if c.Shares == nil {
			c.Shares = map[string]rh.Access{}
		}
		c.Shares[req.User] = req.Access
		s.record(c, c.Status.Phase, fmt.Sprintf("shared with %s (%s) by %s", req.User, req.Access, auth.CallerFrom(ctx).User))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return &api.ClusterReply{Cluster: c}, nil
}

// Unshare takes a user's share away; a user without one is left as is.
func (s *Service) Unshare(ctx context.Context, req api.UnshareRequest) (*api.ClusterReply, error) {
	if err := rh.ValidateName(req.Name); err != nil {
		return nil, err
	}
	if err := rh.ValidateUserName("user", req.User); err != nil {
		return nil, err
	}
	c, err := s.mutate(ctx, req.Name, func(c *rh.Cluster) (bool, error) {
		if err := s.mayShare(ctx, c); err != nil {
			return false, err
		}
		if _, ok := c.Shares[req.User]; !ok {
			return false, nil
		}
		delete(c.Shares, req.User)
		if len(c.Shares) == 0 {
			c.Shares = nil
		}
		s.record(c, c.Status.Phase, fmt.Sprintf("unshared from %s by %s", req.User, auth.CallerFrom(ctx).User))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return &api.ClusterReply{Cluster: c}, nil
}

// mayShare allows the owner and admins. Anyone else is forbidden, with the
// reason a user can act on.
func (s *Service) mayShare(ctx context.Context, c *rh.Cluster) error {
	caller := auth.CallerFrom(ctx)
	if caller.Admin() || (c.Owner != "" && c.Owner == caller.User && caller.Role != rh.RoleViewer) {
		return nil
	}
	return rh.Forbidden("user %q may not share cluster %q: only its owner or an admin may", caller.User, c.Name)
}
