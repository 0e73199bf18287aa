package sshgateway

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/sshx"
)

// Nodes lists the labels of the nodes a selector picks, so a client can fan
// a transfer out to each of them.
//
// It needs read access, or write access when it asks for agents: that
// places and starts the agent on the nodes, which transfers do.
func (s *Service) Nodes(ctx context.Context, req api.NodesRequest) (*api.NodesReply, error) {
	need := rh.AccessRead
	if req.Agent {
		need = rh.AccessWrite
	}
	ts, err := s.clusterNodes(ctx, req.Name, need)
	if err != nil {
		return nil, err
	}
	sel, err := selectNodes(req.Node, ts)
	if err != nil {
		return nil, err
	}
	out := &api.NodesReply{}
	for _, t := range sel {
		out.Nodes = append(out.Nodes, t.Label)
	}
	if req.Agent {
		out.Agents = s.agentsFor(ctx, req.Name, sel)
	}
	return out, nil
}

// Trust forgets the recorded host keys of a cluster's nodes (and its jump
// host), after the user has checked that a changed key is legitimate (a
// reinstalled machine). The next `up` records the keys the nodes present.
// It works in any phase: a cluster whose create failed on a changed key is
// exactly the one that needs it.
//
// It needs write access to the cluster. Host keys are recorded per
// host:port (rh_hostkeys), shared by every cluster naming that address, so
// a cluster that merely names someone else's machine must not unpin it for
// them. A pin belongs to the cluster whose first contact recorded it: trust
// forgets it only for a caller who may change that cluster. A pin recorded
// before pins had owners (or whose cluster is gone) may be forgotten only
// when no other cluster the caller cannot change names the address.
func (s *Service) Trust(ctx context.Context, req api.NameRequest) (*api.TrustReply, error) {
	c, err := s.loadCluster(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	caller := auth.CallerFrom(ctx)
	if err := caller.Check(c, rh.AccessWrite); err != nil {
		return nil, err
	}
	ts, err := s.targetsFor(req.Name, c.Owner, c.Spec, c.Status.Nodes, nil, false)
	if err != nil {
		return nil, err
	}
	var addrs []string
	seen := map[string]bool{}
	for _, t := range ts {
		for _, a := range targetAddrs(t.Target) {
			if !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	// Checked before anything is forgotten: a refusal changes nothing.
	for _, a := range addrs {
		if err := s.checkTrustScope(ctx, caller, c.Name, a); err != nil {
			return nil, err
		}
	}
	s.closeCluster(req.Name)
	out := &api.TrustReply{Forgotten: []string{}}
	for _, a := range addrs {
		forgot, err := s.hostKeys.Forget(ctx, a)
		if err != nil {
			return nil, err
		}
		if forgot {
			out.Forgotten = append(out.Forgotten, a)
		}
	}
	s.log.Info("host keys forgotten", "cluster", req.Name, "by", caller.User, "hosts", out.Forgotten)
	return out, nil
}

// targetAddrs are the host:port whose host keys a target pins: the node's
// and its jump host's.
func targetAddrs(t sshx.Target) []string {
	out := []string{t.Addr()}
	if t.JumpHost != nil {
		out = append(out, t.JumpHost.Addr())
	}
	return out
}

// checkTrustScope says whether caller, trusting cluster self, may forget
// the pin of addr (see Trust).
func (s *Service) checkTrustScope(ctx context.Context, caller rh.Caller, self, addr string) error {
	if caller.Admin() {
		return nil
	}
	rec, found, err := s.hostKeys.Recorder(ctx, addr)
	if err != nil || !found || rec == self {
		return err
	}
	if rec != "" {
		other, err := s.loadCluster(ctx, rec)
		switch {
		case err == nil && caller.Can(other, rh.AccessWrite):
			return nil
		case err == nil:
			return rh.Forbidden("the host key of %s was recorded for another cluster, which you cannot change; "+
				"its owner or an admin must run `rhcli cluster trust` for it", addr)
		case rh.ErrorCode(err) != rh.ENOTFOUND:
			return err
		}
	}
	// No owner to ask: refuse while anyone else's cluster relies on it.
	keys, err := s.records.ListKeys(ctx)
	if err != nil {
		return &rh.Error{Code: rh.EUNAVAILABLE, Message: "cannot read cluster records", Err: err}
	}
	defer func() { _ = keys.Stop() }()
	for k := range keys.Keys() {
		name, ok := strings.CutPrefix(k, events.ClusterKey(""))
		if !ok || name == self {
			continue
		}
		other, err := s.loadCluster(ctx, name)
		if err != nil || caller.Can(other, rh.AccessWrite) {
			continue // gone meanwhile, or the caller's to change
		}
		ts, err := s.targetsFor(name, other.Owner, other.Spec, other.Status.Nodes, nil, false)
		if err != nil {
			continue // no nodes: pins nothing
		}
		for _, t := range ts {
			if slices.Contains(targetAddrs(t.Target), addr) {
				return rh.Forbidden("the host key of %s is also relied on by a cluster you cannot change; "+
					"its owner or an admin must run `rhcli cluster trust` for it", addr)
			}
		}
	}
	return nil
}

// Connect tells the user's own ssh how to reach a node.
//
// SECRET-BEARING ENDPOINT: the answer carries the cluster's private key, so
// that `rhcli ssh` can hand it to OpenSSH. Whoever may call rh.api.ssh.connect
// can log in to the cluster's machines, so it needs write access to the
// cluster. The key is never logged.
//
// It connects first, so the node's host key is verified (or recorded on
// first contact) and the answer pins it in known_hosts lines.
func (s *Service) Connect(ctx context.Context, req api.ConnectRequest) (*api.ConnectReply, error) {
	// Write access: the answer is as good as a login.
	ts, err := s.clusterNodes(ctx, req.Name, rh.AccessWrite)
	if err != nil {
		return nil, err
	}
	sel, err := selectNodes(req.Node, ts)
	if err != nil {
		return nil, err
	}
	if len(sel) != 1 {
		return nil, rh.Invalid("node", "pick one node, not all")
	}
	t := sel[0]
	if _, err := s.client(ctx, req.Name, t.Target); err != nil {
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: reason(req.Name, err)}
	}
	out := &api.ConnectReply{
		Node: t.Label, Host: t.Target.Host, Port: t.Target.Port, User: t.Target.User,
		ProxyCommand: t.Target.ProxyCommand, PrivateKey: string(t.Target.PrivateKey),
		HasPassword: t.HasPassword, UseAgent: t.UseAgent, InsecureIgnoreHostKey: t.Target.InsecureIgnoreHostKey,
	}
	if t.Lent {
		// The gateway lends its identity for its own connections only.
		out.PrivateKey = ""
	}
	out.Caller = auth.CallerFrom(ctx).User
	if out.ProxyCommand != "" && t.SpecProxy {
		out.ProxyCommandBy = t.Owner
	}
	if j := t.Target.JumpHost; j != nil {
		out.JumpHost = fmt.Sprintf("%s@%s", j.User, j.Addr())
	}
	if !out.InsecureIgnoreHostKey {
		addrs := []string{t.Target.Addr()}
		if t.Target.JumpHost != nil {
			addrs = append(addrs, t.Target.JumpHost.Addr())
		}
		for _, a := range addrs {
			line, found, err := s.hostKeys.KnownHostsLine(ctx, a)
			if err != nil {
				return nil, err
			}
			if found {
				out.KnownHosts = append(out.KnownHosts, line)
			}
		}
	}
	s.log.Info("connection details handed out", "cluster", req.Name, "node", t.Label)
	return out, nil
}

// knownhostsLine is the known_hosts line for hostport ("[host]:port" unless
// the port is 22, as OpenSSH writes it). Line normalizes the address itself:
// normalizing twice would split a host with a colon at port 22 (SageMaker's
// SSM target "sagemaker-training-job:<job>_algo-1") into a bogus host and port.
func knownhostsLine(hostport string, k ssh.PublicKey) string {
	return knownhosts.Line([]string{hostport}, k)
}
