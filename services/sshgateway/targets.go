package sshgateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/ssh"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/secrets"
	"github.com/rhq/rh/internal/sshx"
)

// nodeTarget is one node of a cluster and how to reach it. Target holds
// secrets: log Label or Target (whose LogValue hides them), never fields.
type nodeTarget struct {
	// Kind is the cluster's kind (a metrics label).
	Kind   rh.Kind
	Index  int
	Label  string
	Node   rh.Node
	Target sshx.Target
	// JumpHost is the spec's jump host, as the user wrote it.
	JumpHost string
	// HasPassword, UseAgent: what the connect endpoint tells ssh.
	HasPassword bool
	UseAgent    bool
	// Lent: the key is the gateway's own (LendOwnIdentity); connect never
	// hands it out.
	Lent bool
	// SpecProxy: the proxy command is the BYO spec's, written by Owner (not
	// reported by rh's own worker).
	SpecProxy bool
	Owner     string
}

// loadCluster reads a cluster record; only the registry writes them.
func (s *Service) loadCluster(ctx context.Context, name string) (*rh.Cluster, error) {
	if err := rh.ValidateName(name); err != nil {
		return nil, err
	}
	e, err := s.records.Get(ctx, events.ClusterKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, rh.NotFound("cluster %q does not exist", name)
	}
	if err != nil {
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "cannot read cluster records", Err: err}
	}
	var c rh.Cluster
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("sshgateway: decode record of %s: %w", name, err)
	}
	return &c, nil
}

// loadSecrets reads a cluster's secrets; a cluster without any has none.
func (s *Service) loadSecrets(ctx context.Context, name string) (*rh.Secrets, error) {
	sec, _, err := s.secrets.Get(ctx, name)
	switch {
	case errors.Is(err, secrets.ErrMalformed):
		return nil, fmt.Errorf("sshgateway: %w", err)
	case err != nil:
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "cannot read the secret store", Err: err}
	}
	return sec, nil
}

// targetsFor builds the nodes of a cluster: a BYO cluster's come from its
// spec, every other kind's from the nodes its worker reported. Secrets
// apply to every node. With dial, the routes and identities are also
// checked against what the gateway lends (see checkRoute and the
// identity rule below); trust, which only names addresses, skips that.
func (s *Service) targetsFor(name, owner string, spec rh.Spec, reported []rh.Node, sec *rh.Secrets, dial bool) ([]nodeTarget, error) {
	var out []nodeTarget
	key, password := []byte(nil), ""
	if sec != nil {
		if sec.SSHPrivateKey != "" {
			key = []byte(sec.SSHPrivateKey)
		}
		password = sec.Password
	}
	useAgent, insecure, lent := false, false, false
	jump := ""
	if spec.Kind == rh.KindBYO && spec.BYO != nil {
		b := spec.BYO
		useAgent, insecure, jump = b.UseAgent, b.InsecureIgnoreHostKey, b.JumpHost
		if dial && b.ProxyCommand != "" {
			if err := s.checkProxyCommand(name, owner); err != nil {
				return nil, err
			}
		}
		for i, ip := range b.IPs {
			n := rh.Node{Address: ip, Port: b.SSHPort, User: b.SSHUser, ProxyCommand: b.ProxyCommand}
			// Reported facts and host keys are kept for display.
			for _, r := range reported {
				if r.Address == ip && r.Port == b.SSHPort {
					n.InternalAddress, n.HostKey, n.Facts = r.InternalAddress, r.HostKey, r.Facts
				}
			}
			out = append(out, nodeTarget{Kind: spec.Kind, Index: i, Node: n, SpecProxy: b.ProxyCommand != "", Owner: owner})
		}
	} else {
		// Node proxy commands of other kinds come from their worker's
		// reports, which the registry accepts only from that worker and
		// validates: they are trusted here.
		for i, r := range reported {
			out = append(out, nodeTarget{Kind: spec.Kind, Index: i, Node: r})
		}
	}
	if len(out) == 0 {
		return nil, rh.Conflict("cluster %q has no nodes yet", name)
	}
	if dial {
		// The gateway's own identity (its ~/.ssh keys, its ssh-agent) is the
		// operator's: a cluster gets it only when the operator lends it.
		switch {
		case useAgent && !s.cfg.LendOwnIdentity:
			return nil, rh.Forbidden("cluster %q asks for the gateway's ssh-agent, which the gateway does not lend: "+
				"give the cluster its own key (--ssh-key PATH) or password (--password-env VAR)", name)
		case key == nil && password == "" && !useAgent && !s.cfg.LendOwnIdentity:
			return nil, rh.Forbidden("cluster %q has no SSH key or password of its own, and the gateway does not lend its own identity: "+
				"create it with --ssh-key PATH or --password-env VAR", name)
		case key == nil && password == "" && !useAgent:
			key, lent = s.defaultKey(), true
		}
	}
	var jt *sshx.Target
	if jump != "" {
		j, err := parseJumpHost(jump)
		if err != nil {
			return nil, err
		}
		jt = &j
	}
	labels := nodeLabels(out)
	for i := range out {
		n := out[i].Node
		port := n.Port
		if port == 0 {
			port = rh.DefaultSSHPort
		}
		user := n.User
		if user == "" {
			user = "root"
		}
		t := sshx.Target{
			Host: n.Address, Port: port, User: user, PrivateKey: key, Password: password, UseAgent: useAgent,
			ProxyCommand: n.ProxyCommand, InsecureIgnoreHostKey: insecure, ConnectTimeout: s.cfg.ConnectTimeout,
		}
		if jt != nil && t.ProxyCommand == "" {
			j := *jt
			if j.User == "" {
				j.User = user
			}
			j.PrivateKey, j.Password, j.UseAgent, j.InsecureIgnoreHostKey = key, password, useAgent, insecure
			t.JumpHost = &j
		}
		out[i].Label, out[i].Target, out[i].JumpHost = labels[i], t, jump
		out[i].HasPassword, out[i].UseAgent, out[i].Lent = password != "", useAgent, lent
	}
	return out, nil
}

// checkProxyCommand says whether a BYO cluster's proxy command may run on
// the gateway host: it runs there as the gateway's user, so only for owners
// who could do that anyway (admins), when the operator allows every owner,
// or when there is no one else (insecure mode: every caller is the operator).
func (s *Service) checkProxyCommand(name, owner string) error {
	if s.cfg.AllowProxyCommands || s.cfg.Auth.Insecure() {
		return nil
	}
	// rh's own services own what they create; ':' is never in a user name.
	if strings.HasPrefix(owner, "service:") {
		return nil
	}
	if role, ok := s.cfg.Auth.Role(owner); ok && role == rh.RoleAdmin {
		return nil
	}
	who := "has no owner"
	if owner != "" {
		who = fmt.Sprintf("is owned by %q, who is not an admin", owner)
	}
	return rh.Forbidden("cluster %q has a proxy command, which would run on the gateway host as the gateway's user, and it %s: "+
		"use a jump host (--jump-host) instead, or ask the operator to allow proxy commands (rhcli serve --allow-proxy-commands)", name, who)
}

// nodeLabels names nodes by address, or address:port where addresses repeat
// (simulated nodes share 127.0.0.1).
func nodeLabels(ns []nodeTarget) []string {
	seen := map[string]int{}
	for _, n := range ns {
		seen[n.Node.Address]++
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Node.Address
		if seen[n.Node.Address] > 1 {
			port := n.Node.Port
			if port == 0 {
				port = rh.DefaultSSHPort
			}
			out[i] = net.JoinHostPort(n.Node.Address, strconv.Itoa(port))
		}
	}
	return out
}

// parseJumpHost reads [user@]host[:port].
func parseJumpHost(s string) (sshx.Target, error) {
	t := sshx.Target{Port: rh.DefaultSSHPort}
	hostport := s
	if at := strings.LastIndex(s, "@"); at >= 0 {
		t.User, hostport = s[:at], s[at+1:]
	}
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil {
			return t, rh.Invalid("byo.jump_host", "port %q is not a number", p)
		}
		t.Host, t.Port = h, n
	} else {
		t.Host = strings.Trim(hostport, "[]")
	}
	return t, nil
}

// defaultKey is the gateway user's first usable default key, as ssh would
// try: ~/.ssh/id_ed25519, id_rsa, id_ecdsa. Encrypted keys are skipped.
func (s *Service) defaultKey() []byte {
	home := s.cfg.HomeDir
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		home = h
	}
	for _, name := range []string{"id_ed25519", "id_rsa", "id_ecdsa"} {
		b, err := os.ReadFile(filepath.Join(home, ".ssh", name))
		if err != nil {
			continue
		}
		if _, err := ssh.ParsePrivateKey(b); err == nil {
			return b
		}
	}
	return nil
}

// clusterNodes resolves a cluster's nodes for a command or a transfer,
// once the caller is known to have need on it: it must be up (or degraded:
// the reachable nodes still serve).
func (s *Service) clusterNodes(ctx context.Context, name string, need rh.Access) ([]nodeTarget, error) {
	if e, ok := s.targets.get(name); ok {
		if err := auth.CallerFrom(ctx).Check(e.c, need); err != nil {
			return nil, err
		}
		return e.ts, nil
	}
	c, err := s.loadCluster(ctx, name)
	if err != nil {
		return nil, err
	}
	// Access first: the phase and message are for those who may read them.
	if err := auth.CallerFrom(ctx).Check(c, need); err != nil {
		return nil, err
	}
	switch c.Status.Phase {
	case rh.PhaseUp, rh.PhaseDegraded:
	default:
		msg := fmt.Sprintf("cluster %q is %s", name, c.Status.Phase)
		if c.Status.Message != "" {
			msg += " (" + c.Status.Message + ")"
		}
		return nil, rh.Conflict("%s; it must be Up: run `rhcli cluster up %s`", msg, name)
	}
	sec, err := s.loadSecrets(ctx, name)
	if err != nil {
		return nil, err
	}
	ts, err := s.targetsFor(name, c.Owner, c.Spec, c.Status.Nodes, sec, true)
	if err != nil {
		return nil, err
	}
	s.targets.put(name, c, ts)
	return ts, nil
}

// selectNodes picks nodes: head (default), all, a 0-based index, or an
// address (label, address or address:port).
func selectNodes(sel string, ts []nodeTarget) ([]nodeTarget, error) {
	switch sel {
	case "", api.NodeHead:
		return ts[:1], nil
	case api.NodeAll:
		return ts, nil
	}
	if i, err := strconv.Atoi(sel); err == nil {
		if i < 0 || i >= len(ts) {
			return nil, rh.Invalid("node", "index %d is outside 0-%d", i, len(ts)-1)
		}
		return ts[i : i+1], nil
	}
	var out []nodeTarget
	for _, t := range ts {
		if sel == t.Label || sel == t.Node.Address || sel == t.Target.Addr() {
			out = append(out, t)
		}
	}
	switch len(out) {
	case 0:
		labels := make([]string, len(ts))
		for i, t := range ts {
			labels[i] = t.Label
		}
		return nil, rh.Invalid("node", "%q is not head, all, an index or one of the nodes (%s)", sel, strings.Join(labels, ", "))
	case 1:
		return out, nil
	}
	return nil, rh.Invalid("node", "%q names %d nodes; use address:port", sel, len(out))
}

// targetCache keeps resolved nodes briefly: a transfer of many small files
// makes several requests per file, each of which would otherwise read the
// record and the secrets again.
type targetCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedTargets
}

type cachedTargets struct {
	c  *rh.Cluster // for access checks
	ts []nodeTarget
	at time.Time
}

func (c *targetCache) get(name string) (cachedTargets, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok || time.Since(e.at) > c.ttl {
		return cachedTargets{}, false
	}
	return e, true
}

func (c *targetCache) put(name string, cl *rh.Cluster, ts []nodeTarget) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedTargets{}
	}
	for k, e := range c.m {
		if time.Since(e.at) > c.ttl {
			delete(c.m, k)
		}
	}
	c.m[name] = cachedTargets{c: cl, ts: ts, at: time.Now()}
}

func (c *targetCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}
