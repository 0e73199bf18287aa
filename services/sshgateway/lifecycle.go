package sshgateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/worker"
)

// handleIntent is the BYO worker. Nothing here changes the machines: create
// and refresh connect and look, teardown only closes connections.
func (s *Service) handleIntent(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
	log := s.log.With("cluster", in.Cluster, "op", op, "generation", in.Generation)
	switch op {
	case events.OpCreate, events.OpRefresh:
		sec, err := s.loadSecrets(ctx, in.Cluster)
		if err != nil {
			return err
		}
		var reported []rh.Node
		owner := ""
		if c, err := s.loadCluster(ctx, in.Cluster); err == nil {
			reported, owner = c.Status.Nodes, c.Owner
		}
		// A proxy command the owner may not run, or an identity the gateway
		// does not lend, fails the cluster with the reason.
		ts, err := s.targetsFor(in.Cluster, owner, in.Spec, reported, sec, true)
		if err != nil {
			return worker.Permanent(err)
		}
		if op == events.OpCreate {
			s.targets.forget(in.Cluster)
			nodes := make([]rh.Node, len(ts))
			for i, t := range ts {
				nodes[i] = t.Node
			}
			if err := r.Report(ctx, rh.PhaseProvisioning, fmt.Sprintf("connecting to %d node(s)", len(ts)), nodes, nil); err != nil {
				return err
			}
		}
		nodes, down, errs := s.probeAll(ctx, in.Cluster, ts)
		if err := ctx.Err(); err != nil {
			return err
		}
		phase, msg := summarize(nodes, down)
		if phase == rh.PhaseFailed {
			log.Warn("no node reachable", "reason", msg)
			if op == events.OpCreate {
				if definite(errs) {
					return worker.Permanent(errors.New(msg))
				}
				// Refused, timed out, unreachable: a machine booting or a
				// busy network. Say so and try again with backoff; the
				// loop fails the cluster with this reason only after its
				// last delivery.
				if err := r.Report(ctx, rh.PhaseProvisioning, "no node reachable yet, retrying: "+msg, nodes, nil); err != nil {
					return err
				}
				return errors.New(msg)
			}
			// A cluster that was up and lost every node may come back: it is
			// degraded, not failed, and the next refresh looks again.
			phase = rh.PhaseDegraded
		}
		log.Info("nodes checked", "phase", phase, "reachable", len(nodes)-len(down), "nodes", len(nodes))
		return r.Report(ctx, phase, msg, nodes, s.agentInfo(nodes))
	case events.OpTeardown:
		s.closeCluster(in.Cluster)
		return r.Report(ctx, rh.PhaseTerminated, "connections closed; the machines were not touched", nil, nil)
	case events.OpUpdate:
		// BYO clusters have no settings the gateway acts on (autostop is
		// always -1); report the current state so the update counts as observed.
		c, err := s.loadCluster(ctx, in.Cluster)
		if err != nil {
			if rh.ErrorCode(err) == rh.ENOTFOUND {
				return nil
			}
			return err
		}
		if !c.Status.Phase.Live() {
			return nil
		}
		return r.Report(ctx, c.Status.Phase, c.Status.Message, nil, nil)
	}
	return worker.Permanent(fmt.Errorf("unknown operation %q", op))
}

// agentInfo summarises the nodes' agents for the record's info: how many
// run it, and which use plain sessions instead (their messages say why).
func (s *Service) agentInfo(nodes []rh.Node) map[string]string {
	if s.cfg.DisableAgent {
		return map[string]string{"agent": "disabled; using plain SSH sessions"}
	}
	running, reachable := 0, 0
	var without []string
	for _, n := range nodes {
		if !n.Reachable {
			continue
		}
		reachable++
		if n.Message == "" {
			running++
		} else {
			without = append(without, n.Address)
		}
	}
	if reachable == 0 {
		return nil
	}
	v := fmt.Sprintf("%s on %d/%d reachable nodes", s.cfg.AgentVersion, running, reachable)
	if len(without) > 0 {
		v += "; plain SSH sessions on " + strings.Join(without, ", ") + " (see the nodes' messages)"
	}
	return map[string]string{"agent": v}
}

// summarize gives the phase and message for the probed nodes.
func summarize(nodes []rh.Node, down []int) (rh.Phase, string) {
	switch {
	case len(down) == 0:
		return rh.PhaseUp, fmt.Sprintf("%d/%d nodes reachable", len(nodes), len(nodes))
	case len(down) == len(nodes) && len(nodes) == 1:
		return rh.PhaseFailed, nodes[0].Message
	case len(down) == len(nodes):
		parts := make([]string, len(down))
		for i, d := range down {
			parts[i] = nodes[d].Message
		}
		return rh.PhaseFailed, "no node reachable: " + strings.Join(parts, "; ")
	}
	parts := make([]string, len(down))
	for i, d := range down {
		parts[i] = nodes[d].Message
	}
	return rh.PhaseDegraded, fmt.Sprintf("%d/%d nodes reachable; unreachable: %s", len(nodes)-len(down), len(nodes), strings.Join(parts, "; "))
}

// probeAll checks every node in parallel and returns them with the indexes
// of those that could not be reached and why.
func (s *Service) probeAll(ctx context.Context, cluster string, ts []nodeTarget) ([]rh.Node, []int, []error) {
	nodes := make([]rh.Node, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { nodes[i], errs[i] = s.probe(ctx, cluster, t) })
	}
	wg.Wait()
	var down []int
	var downErrs []error
	for i, n := range nodes {
		if !n.Reachable {
			down = append(down, i)
			downErrs = append(downErrs, errs[i])
		}
	}
	return nodes, down, downErrs
}

// definite reports whether every node failed for a reason waiting will not
// change: the credentials were refused, a host key changed, or a name does
// not resolve. Anything else (refused, timed out, unreachable) may pass.
func definite(errs []error) bool {
	for _, err := range errs {
		if !errors.Is(err, sshx.ErrAuthFailed) && !errors.Is(err, sshx.ErrHostKeyChanged) && !errors.Is(err, sshx.ErrDNS) {
			return false
		}
	}
	return len(errs) > 0
}

// probe connects to a node (recording its host key on first contact) and
// gathers its facts. A node that let the gateway in but answers slowly is
// reachable ("slow"), never down: a busy GPU box is not a dead one. The
// error says why a node could not be reached.
func (s *Service) probe(ctx context.Context, cluster string, t nodeTarget) (rh.Node, error) {
	n := t.Node
	n.Reachable, n.Message = false, ""
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	var facts sshx.Facts
	var c *sshx.Client
	var err error
	agentMsg := ""
	for attempt := 0; attempt < 2; attempt++ {
		c, err = s.client(ctx, cluster, t.Target)
		if err != nil {
			break
		}
		// A running agent answers facts in one round trip; otherwise one
		// session gathers them, and then the agent is placed and started
		// (first contact), knowing the node's architecture.
		if ac := s.runningAgent(t.Target); ac != nil {
			if facts, err = ac.Facts(ctx); err == nil {
				break
			}
		}
		facts, err = sshx.GetFacts(ctx, c)
		if err != nil && !errors.Is(err, sshx.ErrConnLost) && ctx.Err() != nil {
			// Out of time on a connection that was made. If sshd still
			// answers a keepalive, the node is busy, not gone: reachable
			// ("slow"), and the connection other clusters share stays.
			pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ConnectTimeout)
			perr := c.Ping(pctx)
			pcancel()
			if perr == nil {
				n.Reachable, n.HostKey = true, c.HostKey().Fingerprint
				n.Message = fmt.Sprintf("%s: connected, but slow to answer (no facts within %s); looking again at the next refresh", t.Label, s.cfg.ProbeTimeout)
				return n, nil
			}
			// No answer at all: the connection is dead for everyone.
			_ = c.Close()
		}
		if err == nil {
			if !s.cfg.DisableAgent {
				t.Node.Facts = &rh.Facts{Arch: facts.Arch}
				_, aerr := s.agentFor(ctx, cluster, t)
				if st, msg := s.agentState(nil, aerr); st != api.AgentRunning {
					agentMsg = msg
				}
			}
			break
		}
		if !errors.Is(err, sshx.ErrConnLost) {
			break
		}
		// A connection that died since its last use is dropped so the next
		// attempt dials afresh. A live one is left alone: other clusters on
		// this node share it.
		_ = c.Close()
	}
	if err != nil {
		n.Message = fmt.Sprintf("%s: %s", t.Label, reason(cluster, err))
		return n, err
	}
	n.Reachable = true
	n.Message = agentMsg
	n.HostKey = c.HostKey().Fingerprint
	os := facts.OS
	if facts.Distro != "" {
		os = facts.Distro
	}
	f := &rh.Facts{OS: os, Kernel: facts.Kernel, Arch: facts.Arch, CPUs: facts.CPUs, MemoryBytes: facts.MemoryBytes}
	for _, g := range facts.GPUs {
		f.GPUs = append(f.GPUs, rh.GPU{Name: g.Name, MemoryBytes: g.MemoryBytes})
	}
	n.Facts = f
	return n, nil
}

// reason says why a node could not be reached, in words a user can act on.
// sshx's messages already name the class (authentication refused,
// connection refused, timed out, host key changed, no such host); this adds
// what to do about it.
func reason(cluster string, err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, sshx.ErrHostKeyChanged):
		return msg + fmt.Sprintf(" (if you trust the new key: rhcli cluster trust %s, then rhcli cluster up %s)", cluster, cluster)
	case errors.Is(err, sshx.ErrAuthFailed):
		return msg + " (check the user, key or password)"
	}
	return msg
}
