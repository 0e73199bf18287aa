package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/sshx"
)

// TunnelOptions say where a tunnel listens and which node it reaches.
type TunnelOptions struct {
	// Node is "head" (default), a 0-based index or a node's address.
	Node string
	// LocalAddr is the local host:port to listen on. Empty means
	// 127.0.0.1 and the remote port; port 0 picks a free port.
	LocalAddr string
	// Listener, when set, is listened on instead of LocalAddr. The tunnel
	// closes it when it ends.
	Listener net.Listener
	// RemoteHost is the host the node connects to; default "localhost",
	// the node itself.
	RemoteHost string
	// TrustProxyCommand runs a proxy command that another user wrote into
	// the cluster's spec on this machine (see CheckProxyConsent).
	TrustProxyCommand bool
	// OnEvent, if set, is told when the connection to the node drops, each
	// failed redial, the reconnection, and connections the node could not
	// pass on; never concurrently.
	OnEvent func(TunnelEvent)
}

// TunnelEvent is a change in a tunnel's state: Kind is "lost" (the
// connection to the node dropped; the tunnel reconnects), "retrying" (a
// reconnection failed; the next is in Wait), "connected" (reconnected) or
// "refused" (the node could not connect to the remote port: nothing
// listens there). Err says why.
type TunnelEvent struct {
	Kind string
	Err  error
	Wait time.Duration
}

// Tunnel forwards a local port to a port on a node, as `ssh -L` does,
// until its context ends or Close is called.
type Tunnel struct {
	// Addr is the local address the tunnel listens on.
	Addr net.Addr
	// Node is the node it reaches, as the gateway labels it.
	Node string
	// Remote is the host:port the node connects to.
	Remote string
	fw     *sshx.Forwarding
}

// Done is closed when the tunnel has ended.
func (t *Tunnel) Done() <-chan struct{} { return t.fw.Done() }

// Wait blocks until the tunnel ends and says why: nil when its context
// ended or Close was called, else what made it give up (the node refused
// the login, or its host key changed).
func (t *Tunnel) Wait() error {
	<-t.fw.Done()
	return t.err()
}

// Err is Wait's answer once Done is closed, nil before.
func (t *Tunnel) Err() error {
	select {
	case <-t.fw.Done():
		return t.err()
	default:
		return nil
	}
}

func (t *Tunnel) err() error {
	err := t.fw.Err()
	if errors.Is(err, sshx.ErrForwardClosed) {
		return nil
	}
	return &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("tunnel to %s on node %s ended", t.Remote, t.Node), Err: err}
}

// Close ends the tunnel and the connections it carries.
func (t *Tunnel) Close() error { return t.fw.Close() }

// URL is http://ADDR for the tunnel's local address.
func (t *Tunnel) URL() string { return "http://" + t.Addr.String() }

// Tunnel forwards a local port to remotePort on a node of the cluster
// (Runhouse's ssh_tunnel). It needs write access to the cluster, as ssh
// does: it gives network reach into the node. The SSH connection is made
// here, from the gateway's connection details (the cluster's key, proxy
// command or jump host, and the host key rh recorded, which must match).
// It returns once the local port listens and the node accepted the login;
// the tunnel then runs until ctx ends, reconnecting when the connection
// drops. A local port in use is a conflict naming the port.
func (c *Client) Tunnel(ctx context.Context, name string, remotePort int, o TunnelOptions) (*Tunnel, error) {
	if remotePort < 1 || remotePort > 65535 {
		return nil, rh.Invalid("remote port", "%d is not a port (1-65535)", remotePort)
	}
	if o.Node == api.NodeAll {
		return nil, rh.Invalid("node", "a tunnel reaches one node: pick head, an index or an address, not all")
	}
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = listenLocal(o.LocalAddr, remotePort); err != nil {
			return nil, err
		}
	}
	info, err := c.tunnelInfo(ctx, name, o)
	if err != nil {
		ln.Close()
		return nil, err
	}
	t, err := c.tunnel(ctx, name, remotePort, ln, info, o)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return t, nil
}

// tunnelInfo asks the gateway how to reach the node (write access) and
// checks the route may run here.
func (c *Client) tunnelInfo(ctx context.Context, name string, o TunnelOptions) (*api.ConnectReply, error) {
	info, err := c.SSHInfo(ctx, name, o.Node)
	if err != nil {
		return nil, err
	}
	if err := CheckProxyConsent(name, info, o.TrustProxyCommand); err != nil {
		return nil, err
	}
	if _, err := tunnelTarget(name, info); err != nil {
		return nil, err
	}
	return info, nil
}

func (c *Client) tunnel(ctx context.Context, name string, remotePort int, ln net.Listener, info *api.ConnectReply, o TunnelOptions) (*Tunnel, error) {
	target, err := tunnelTarget(name, info)
	if err != nil {
		return nil, err
	}
	pins, err := sshx.PinnedHostKeys(info.KnownHosts)
	if err != nil {
		return nil, err
	}
	d := &sshx.Dialer{
		HostKeys: pins, AgentSocket: os.Getenv("SSH_AUTH_SOCK"),
		// Notices a node that stopped answering (a cut network) within
		// half a minute, so the tunnel redials instead of hanging.
		KeepaliveInterval: 10 * time.Second,
		Logger:            slog.New(slog.DiscardHandler),
	}
	host := o.RemoteHost
	if host == "" {
		host = "localhost"
	}
	remote := net.JoinHostPort(host, strconv.Itoa(remotePort))
	var fo sshx.ForwardOptions
	if o.OnEvent != nil {
		fo.OnEvent = func(e sshx.ForwardEvent) { o.OnEvent(TunnelEvent{Kind: string(e.Kind), Err: e.Err, Wait: e.Wait}) }
	}
	fw, err := sshx.Forward(ctx, d, target, ln, remote, fo)
	if err != nil {
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("tunnel to cluster %q node %s", name, info.Node), Err: err}
	}
	return &Tunnel{Addr: fw.Addr(), Node: info.Node, Remote: remote, fw: fw}, nil
}

// listenLocal listens on addr ("" means 127.0.0.1:defaultPort; a bare port
// or a host without a port are completed the same way). A port another
// process holds is a conflict that names it.
func listenLocal(addr string, defaultPort int) (net.Listener, error) {
	host, port := "127.0.0.1", strconv.Itoa(defaultPort)
	switch {
	case addr == "":
	case !strings.Contains(addr, ":"):
		if _, err := strconv.Atoi(addr); err == nil {
			port = addr
		} else {
			host = addr
		}
	default:
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, rh.Invalid("local address", "%q is not HOST:PORT: %v", addr, err)
		}
		if h != "" {
			host = h
		}
		port = p
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, rh.Invalid("local port", "%q is not a port (0-65535)", port)
	}
	hp := net.JoinHostPort(host, port)
	ln, err := net.Listen("tcp", hp)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, &rh.Error{Code: rh.ECONFLICT, Message: fmt.Sprintf("local port %s is in use on %s (another program listens there): pick another local port", port, host), Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("client: listen on %s: %w", hp, err)
	}
	return ln, nil
}

// tunnelTarget is how this process logs in to the node of info.
func tunnelTarget(name string, info *api.ConnectReply) (sshx.Target, error) {
	t := sshx.Target{
		Host: info.Host, Port: info.Port, User: info.User, ProxyCommand: info.ProxyCommand,
		UseAgent: info.UseAgent, InsecureIgnoreHostKey: info.InsecureIgnoreHostKey,
	}
	if info.PrivateKey != "" {
		t.PrivateKey = []byte(info.PrivateKey)
	}
	if t.PrivateKey == nil && !t.UseAgent {
		if info.HasPassword {
			// The gateway never hands out passwords.
			return t, rh.Conflict("cluster %q logs in with a password, which rh does not hand out: "+
				"use `rhcli ssh %s -N -L PORT:localhost:PORT` (OpenSSH asks for the password)", name, name)
		}
		// The gateway lent its own identity, which it never hands out
		// either: log in as the user's own ssh would.
		t.PrivateKey = ownKey()
		t.UseAgent = os.Getenv("SSH_AUTH_SOCK") != ""
		if t.PrivateKey == nil && !t.UseAgent {
			return t, rh.Conflict("cluster %q has no key of its own, and you have no unencrypted ~/.ssh/id_ed25519, id_ecdsa or id_rsa nor an ssh-agent to log in with", name)
		}
	}
	if info.JumpHost != "" {
		j, err := parseJumpHost(info.JumpHost)
		if err != nil {
			return t, err
		}
		if j.User == "" {
			j.User = t.User
		}
		j.PrivateKey, j.UseAgent, j.InsecureIgnoreHostKey = t.PrivateKey, t.UseAgent, t.InsecureIgnoreHostKey
		t.JumpHost = &j
	}
	return t, nil
}

// parseJumpHost reads the gateway's user@host:port.
func parseJumpHost(s string) (sshx.Target, error) {
	t := sshx.Target{Port: 22}
	hostport := s
	if at := strings.LastIndex(s, "@"); at >= 0 {
		t.User, hostport = s[:at], s[at+1:]
	}
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Host = strings.Trim(hostport, "[]")
		return t, nil
	}
	if t.Port, err = strconv.Atoi(p); err != nil {
		return t, fmt.Errorf("client: jump host %q: port %q is not a number", s, p)
	}
	t.Host = h
	return t, nil
}

// ownKey is the user's first default key that needs no passphrase, as ssh
// would try.
func ownKey() []byte {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		b, err := os.ReadFile(filepath.Join(home, ".ssh", n))
		if err != nil {
			continue
		}
		if _, err := ssh.ParsePrivateKey(b); err == nil {
			return b
		}
	}
	return nil
}

// CheckProxyConsent refuses a proxy command that another user wrote into
// the cluster's spec: ssh and tunnels run it on this machine, as this
// user, so it is that user's code running here. rh's own proxy commands
// (SageMaker's SSM session, reported by its worker) and the caller's own
// are used as they are.
func CheckProxyConsent(cluster string, info *api.ConnectReply, trusted bool) error {
	if info.ProxyCommand == "" || info.ProxyCommandBy == "" || info.ProxyCommandBy == info.Caller || trusted {
		return nil
	}
	return rh.Forbidden("cluster %q reaches its nodes through a proxy command that user %q wrote, which would run on this machine as you:\n  %s\n"+
		"read it, then pass --trust-proxy-command (TrustProxyCommand in the Go SDK) to run it", cluster, info.ProxyCommandBy, info.ProxyCommand)
}
