package sshgateway

import (
	"context"
	"fmt"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// Nodes lists the labels of the nodes a selector picks, so a client can fan
// a transfer out to each of them.
func (s *Service) Nodes(ctx context.Context, req api.NodesRequest) (*api.NodesReply, error) {
	ts, err := s.clusterNodes(ctx, req.Name)
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
func (s *Service) Trust(ctx context.Context, req api.NameRequest) (*api.TrustReply, error) {
	c, err := s.loadCluster(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	ts, err := s.targetsFor(req.Name, c.Spec, c.Status.Nodes, nil)
	if err != nil {
		return nil, err
	}
	s.closeCluster(req.Name)
	out := &api.TrustReply{Forgotten: []string{}}
	seen := map[string]bool{}
	for _, t := range ts {
		addrs := []string{t.Target.Addr()}
		if t.Target.JumpHost != nil {
			addrs = append(addrs, t.Target.JumpHost.Addr())
		}
		for _, a := range addrs {
			if seen[a] {
				continue
			}
			seen[a] = true
			forgot, err := s.hostKeys.Forget(ctx, a)
			if err != nil {
				return nil, err
			}
			if forgot {
				out.Forgotten = append(out.Forgotten, a)
			}
		}
	}
	s.log.Info("host keys forgotten", "cluster", req.Name, "hosts", out.Forgotten)
	return out, nil
}

// Connect tells the user's own ssh how to reach a node.
//
// SECRET-BEARING ENDPOINT: the answer carries the cluster's private key, so
// that `rhcli ssh` can hand it to OpenSSH. Whoever may call rh.api.ssh.connect
// can log in to the cluster's machines; restrict it with NATS permissions
// like the secret store itself. The key is never logged.
//
// It connects first, so the node's host key is verified (or recorded on
// first contact) and the answer pins it in known_hosts lines.
func (s *Service) Connect(ctx context.Context, req api.ConnectRequest) (*api.ConnectReply, error) {
	ts, err := s.clusterNodes(ctx, req.Name)
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
// the port is 22, as OpenSSH writes it).
func knownhostsLine(hostport string, k ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(hostport)}, k)
}
