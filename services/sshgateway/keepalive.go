package sshgateway

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"sync"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/sshx"
)

// DefaultKeepAliveDir is where the SageMaker keep-alive entry point keeps
// its files on a node (sm.KeepAliveScript reads autostop_mins there every
// 20 s).
const DefaultKeepAliveDir = "/opt/rh"

// KeepAliveAutostop writes a SageMaker cluster's new idle limit into the
// autostop_mins file every node's keep-alive loop reads, so the change
// applies to the running job at its next check (SageMaker cannot change a
// running job's environment). Only rh's services may ask: the subject is
// outside what people can publish to, and the caller is checked again here.
func (s *Service) KeepAliveAutostop(ctx context.Context, req api.KeepAliveAutostopRequest) (*api.KeepAliveAutostopReply, error) {
	if c := auth.CallerFrom(ctx); !c.Service && !s.cfg.Auth.Insecure() {
		return nil, rh.Forbidden("only rh's services may rewrite a keep-alive's autostop (%s asked)", c.User)
	}
	if req.Minutes < -1 {
		return nil, rh.Invalid("minutes", "%d; must be -1 (never) or at least 0", req.Minutes)
	}
	ts, err := s.clusterNodes(ctx, req.Name, rh.AccessWrite)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 || ts[0].Kind != rh.KindSageMaker {
		return nil, rh.Invalid("name", "cluster %q is not a SageMaker cluster: only its keep-alive reads autostop_mins", req.Name)
	}
	// Written beside and renamed, so the loop never reads half a number;
	// the side file is the writing shell's own ($$), so writers sharing a
	// directory (simulated nodes, one home) never rename each other's.
	dir := s.cfg.KeepAliveDir
	file := path.Join(dir, "autostop_mins")
	q := sshx.ShellQuote(file)
	cmd := fmt.Sprintf("mkdir -p %s && printf '%%s\\n' %s > %s.rh-new.$$ && mv -f %s.rh-new.$$ %s",
		sshx.ShellQuote(dir), strconv.Itoa(req.Minutes), q, q, q)
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() {
			code, err := s.pool.Run(ctx, t.Target, sshx.RunRequest{Command: cmd})
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("node %s: %w", t.Label, err)
			case code != 0:
				errs[i] = fmt.Errorf("node %s: writing %s exited %d", t.Label, file, code)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("autostop not written on every node of %s: %v", req.Name, err), Err: err}
	}
	s.log.Info("keep-alive autostop rewritten", "cluster", req.Name, "minutes", req.Minutes, "nodes", len(ts))
	return &api.KeepAliveAutostopReply{Name: req.Name, Nodes: len(ts)}, nil
}
