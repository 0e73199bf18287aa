package sshx

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/rhq/rh/internal/lazyre"
)

// DefaultMaxSessions is OpenSSH's default MaxSessions: how many sessions
// sshd lets one connection hold at once.
const DefaultMaxSessions = 10

// Dialer opens authenticated SSH connections. The zero value works for
// targets with InsecureIgnoreHostKey; others need HostKeys.
type Dialer struct {
	// HostKeys verifies and records host keys (trust on first use).
	HostKeys HostKeyStore
	// KeepaliveInterval, when positive, sends keepalive@openssh.com on
	// that interval and closes the connection after three missed replies.
	KeepaliveInterval time.Duration
	// MaxSessions caps concurrent sessions per connection; Run waits for
	// a free one. Default DefaultMaxSessions (sshd's own default). One
	// more is briefly opened beyond it to kill a cancelled command.
	MaxSessions int
	// Logger gets connection events. Default slog.Default().
	Logger *slog.Logger
	// AgentSocket is the ssh-agent socket that targets with UseAgent sign
	// with: the caller's SSH_AUTH_SOCK. Empty: such targets fail to dial.
	AgentSocket string
}

// validHost guards the %h expansion in proxy commands (run by a shell)
// and refuses option-like hosts.
var validHost = lazyre.New(`^[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*$`)

func (d *Dialer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// Dial connects and authenticates to t. Errors are *Error (or
// *HostKeyMismatchError) and match one of the Err* classes.
func (d *Dialer) Dial(ctx context.Context, t Target) (*Client, error) {
	start := time.Now()
	if t.Port == 0 {
		t.Port = 22
	}
	name := t.String()
	if !validHost.MatchString(t.Host) {
		return nil, &Error{Op: "dial", Target: name, Detail: fmt.Sprintf("invalid host name %q", t.Host)}
	}
	if t.ProxyCommand != "" && t.JumpHost != nil {
		return nil, &Error{Op: "dial", Target: name, Detail: "ProxyCommand and JumpHost are exclusive"}
	}
	timeout := t.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	c := &Client{target: t.String(), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			c.closeAll()
		}
	}()

	// Keys are decrypted before the clock starts: a passphrase KDF is
	// deliberately slow and is not part of reaching the node.
	cfg := &ssh.ClientConfig{User: t.User, Timeout: timeout}
	var err error
	if cfg.Auth, err = d.authMethods(t, c); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case t.InsecureIgnoreHostKey:
		c.hostKey.Ignored = true
		cfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
			c.hostKey.Fingerprint = Fingerprint(key)
			return nil
		}
	case d.HostKeys == nil:
		return nil, &Error{Op: "dial", Target: name, Detail: "no host key store configured and InsecureIgnoreHostKey not set"}
	default:
		want, found, err := d.HostKeys.Lookup(ctx, t.Addr())
		if err != nil {
			return nil, &Error{Op: "look up host key of", Target: name, Err: err}
		}
		if found {
			cfg.HostKeyAlgorithms = hostKeyAlgorithms(want)
		} else {
			want = nil
		}
		cfg.HostKeyCallback = tofu(ctx, d.HostKeys, t.Addr(), want, &c.hostKey)
	}

	conn, err := d.transport(ctx, t, c)
	if err != nil {
		return nil, err
	}
	// The handshake has no context of its own: closing the transport when
	// ctx ends is what interrupts it (proxy pipes have no deadlines).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, t.Addr(), cfg)
	stop()
	if err != nil {
		// A proxy that exits explains a handshake that broke off; it is
		// asked before the proxy is closed, since closing kills it and its
		// "killed" would hide a refused login or a changed host key.
		if pc, isProxy := conn.(*procConn); isProxy && ctx.Err() == nil && proxyMayBeAtFault(err) {
			if pe := pc.failure(time.Second); pe != nil {
				err = pe
			}
		}
		conn.Close()
		return nil, classify(ctx, "dial", name, err)
	}
	c.ssh = ssh.NewClient(sc, chans, reqs)
	max := d.MaxSessions
	if max <= 0 {
		max = DefaultMaxSessions
	}
	c.sessions = make(chan struct{}, max)
	c.lastUsed.Store(time.Now().UnixNano())
	go func() {
		err := c.ssh.Wait()
		c.setErr(err)
		c.closeAll()
	}()
	if d.KeepaliveInterval > 0 {
		go c.keepalive(d.KeepaliveInterval, d.logger())
	}
	ok = true
	log := d.logger().With("target", name)
	if c.hostKey.FirstUse {
		log.Info("ssh: recorded host key on first contact", "fingerprint", c.hostKey.Fingerprint)
	}
	log.Debug("ssh: connected", "duration", time.Since(start))
	return c, nil
}

// proxyMayBeAtFault tells a handshake failure the proxy may have caused
// (the stream ended) from the node's own answers: a host key that does not
// match, or a refused login.
func proxyMayBeAtFault(err error) bool {
	var hk *HostKeyMismatchError
	var ce *Error
	return !errors.As(err, &hk) && !errors.As(err, &ce) && !strings.Contains(err.Error(), "unable to authenticate")
}

// authMethods builds the methods from t, in OpenSSH's order: public keys,
// then password and keyboard-interactive.
func (d *Dialer) authMethods(t Target, c *Client) ([]ssh.AuthMethod, error) {
	name := t.String()
	var methods []ssh.AuthMethod
	var signers []ssh.Signer
	if len(t.PrivateKey) > 0 {
		var s ssh.Signer
		var err error
		if len(t.Passphrase) > 0 {
			s, err = ssh.ParsePrivateKeyWithPassphrase(t.PrivateKey, t.Passphrase)
		} else {
			s, err = ssh.ParsePrivateKey(t.PrivateKey)
		}
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, &Error{Op: "dial", Target: name, Kind: ErrAuthFailed, Detail: "the private key is encrypted and no passphrase was given"}
		case errors.Is(err, x509.IncorrectPasswordError), err != nil && len(t.Passphrase) > 0 && legacyEncryptedPEM(t.PrivateKey):
			// A legacy encrypted PEM checks the passphrase only by its CBC
			// padding, which a wrong one passes about once in 256 tries; the
			// garbage it decrypts to then fails to parse.
			return nil, &Error{Op: "dial", Target: name, Kind: ErrAuthFailed, Detail: "wrong passphrase for the private key"}
		case err != nil:
			// The parser's message never quotes the key itself.
			return nil, &Error{Op: "dial", Target: name, Kind: ErrAuthFailed, Detail: "cannot read the private key: " + err.Error()}
		}
		signers = append(signers, s)
	}
	var agentClient agent.ExtendedAgent
	if t.UseAgent {
		sock := d.AgentSocket
		if sock == "" {
			return nil, &Error{Op: "dial", Target: name, Kind: ErrAuthFailed, Detail: "UseAgent is set but the dialer has no agent socket (SSH_AUTH_SOCK)"}
		}
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, &Error{Op: "dial", Target: name, Kind: ErrAuthFailed, Detail: "cannot reach ssh-agent", Err: err}
		}
		c.closers = append(c.closers, ac)
		agentClient = agent.NewClient(ac)
	}
	if len(signers) > 0 || agentClient != nil {
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			all := signers
			if agentClient != nil {
				as, err := agentClient.Signers()
				if err != nil {
					return nil, fmt.Errorf("ssh-agent: %w", err)
				}
				all = append(append([]ssh.Signer(nil), signers...), as...)
			}
			return all, nil
		}))
	}
	if t.Password != "" {
		pw := t.Password
		methods = append(methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] { // a hidden prompt is the password prompt
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		return nil, &Error{Op: "dial", Target: name, Kind: ErrAuthFailed, Detail: "no private key, agent or password configured"}
	}
	return methods, nil
}

// transport opens the byte stream the SSH connection runs over.
func (d *Dialer) transport(ctx context.Context, t Target, c *Client) (net.Conn, error) {
	name := t.String()
	switch {
	case t.ProxyCommand != "":
		cmd, err := expandProxyCommand(t.ProxyCommand, t)
		if err != nil {
			return nil, &Error{Op: "dial", Target: name, Kind: ErrProxyFailed, Detail: err.Error()}
		}
		pc, err := startProxy(cmd)
		if err != nil {
			return nil, &Error{Op: "dial", Target: name, Kind: ErrProxyFailed, Err: err}
		}
		return pc, nil
	case t.JumpHost != nil:
		jt := *t.JumpHost
		if jt.ConnectTimeout == 0 {
			jt.ConnectTimeout = t.ConnectTimeout
		}
		jump, err := d.withoutKeepalive().Dial(ctx, jt)
		if err != nil {
			return nil, fmt.Errorf("reaching %s through jump host: %w", name, err)
		}
		c.closers = append(c.closers, jump)
		conn, err := jump.ssh.DialContext(ctx, "tcp", t.Addr())
		if err != nil {
			return nil, classify(ctx, "dial", name, fmt.Errorf("through jump host %s: %w", jt.String(), err))
		}
		return conn, nil
	default:
		var nd net.Dialer
		conn, err := nd.DialContext(ctx, "tcp", t.Addr())
		if err != nil {
			return nil, classify(ctx, "dial", name, err)
		}
		return conn, nil
	}
}

// withoutKeepalive is used for jump hosts: the tunnelled connection's own
// keepalives travel through them and detect their failure too.
func (d *Dialer) withoutKeepalive() *Dialer {
	cp := &Dialer{HostKeys: d.HostKeys, MaxSessions: d.MaxSessions, Logger: d.Logger}
	return cp
}

// Client is one authenticated SSH connection. Sessions are multiplexed
// over it, at most MaxSessions at once. It is safe for concurrent use.
type Client struct {
	ssh      *ssh.Client
	target   string
	hostKey  HostKeyInfo
	sessions chan struct{} // semaphore of open sessions
	closers  []io.Closer   // jump host, agent connection
	lastUsed atomic.Int64  // unix nanos of the last session start or end
	held     atomic.Int32  // long-lived uses (Hold) not yet released

	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
}

// SSH is the underlying connection, for SFTP and port forwarding.
func (c *Client) SSH() *ssh.Client { return c.ssh }

// HostKey reports the host key check made while dialing.
func (c *Client) HostKey() HostKeyInfo { return c.hostKey }

// Target is user@host:port of the node.
func (c *Client) Target() string { return c.target }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err tells why the connection ended, once Done is closed.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *Client) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		if err == nil {
			err = io.EOF
		}
		c.err = err
	}
}

func (c *Client) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Close ends the connection and everything it depends on.
func (c *Client) Close() error {
	c.setErr(net.ErrClosed)
	c.closeAll()
	return nil
}

func (c *Client) closeAll() {
	c.closeOnce.Do(func() {
		if c.ssh != nil {
			c.ssh.Close()
		}
		for i := len(c.closers) - 1; i >= 0; i-- {
			c.closers[i].Close()
		}
		close(c.done)
	})
}

// Ping asks the server for a keepalive answer and waits for it until ctx
// ends. sshd answers in its own loop whatever the login shells are doing,
// so a node that answers Ping but not a command is busy, not gone.
func (c *Client) Ping(ctx context.Context) error {
	reply := make(chan error, 1)
	go func() {
		_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	select {
	case err := <-reply:
		if err != nil {
			return &Error{Op: "ping", Target: c.target, Kind: ErrConnLost, Detail: "the connection has closed", Err: err}
		}
		return nil
	case <-c.done:
		return &Error{Op: "ping", Target: c.target, Kind: ErrConnLost, Detail: "the connection has closed", Err: c.Err()}
	case <-ctx.Done():
		return &Error{Op: "ping", Target: c.target, Kind: ErrTimeout, Detail: "no keepalive answer", Err: ctx.Err()}
	}
}

// keepalive closes the connection when the server stops answering, so
// a dead node is noticed without waiting for TCP to give up.
func (c *Client) keepalive(interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-c.done:
			return
		case err := <-reply:
			if err != nil {
				c.setErr(err)
				c.closeAll()
				return
			}
		case <-time.After(3 * interval):
			log.Warn("ssh: keepalive unanswered, closing connection", "target", c.target, "waited", 3*interval)
			c.setErr(fmt.Errorf("keepalive unanswered for %s: %w", 3*interval, os.ErrDeadlineExceeded))
			c.closeAll()
			return
		}
	}
}

// session is an open session holding one of the client's slots.
type session struct {
	*ssh.Session
	release func()
}

// openSession opens a session, waiting for a free slot and retrying while
// the server says it has too many (its count can lag our closes).
func (c *Client) openSession(ctx context.Context, useSlot bool) (*session, error) {
	release := func() {}
	if useSlot {
		select {
		case c.sessions <- struct{}{}:
		case <-ctx.Done():
			return nil, classify(ctx, "open session on", c.target, ctx.Err())
		case <-c.done:
			return nil, c.lostErr()
		}
		var once sync.Once
		release = func() {
			once.Do(func() {
				c.lastUsed.Store(time.Now().UnixNano())
				<-c.sessions
			})
		}
	}
	c.lastUsed.Store(time.Now().UnixNano())
	backoff := 10 * time.Millisecond
	for {
		type result struct {
			s   *ssh.Session
			err error
		}
		ch := make(chan result, 1)
		go func() {
			s, err := c.ssh.NewSession()
			ch <- result{s, err}
		}()
		var r result
		select {
		case r = <-ch:
		case <-ctx.Done():
			go func() {
				if r := <-ch; r.s != nil {
					r.s.Close()
				}
				release()
			}()
			return nil, classify(ctx, "open session on", c.target, ctx.Err())
		}
		if r.err == nil {
			return &session{Session: r.s, release: release}, nil
		}
		var oce *ssh.OpenChannelError
		// sshd refuses a session beyond MaxSessions with "open failed"
		// (or "prohibited"); its count lags our closes, so wait and retry.
		if errors.As(r.err, &oce) && c.alive() && oce.Reason != ssh.UnknownChannelType {
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, 500*time.Millisecond)
				continue
			case <-ctx.Done():
				release()
				return nil, classify(ctx, "open session on", c.target, ctx.Err())
			}
		}
		release()
		if !c.alive() {
			return nil, c.lostErr()
		}
		return nil, classify(ctx, "open session on", c.target, r.err)
	}
}

func (c *Client) lostErr() error {
	return &Error{Op: "open session on", Target: c.target, Kind: ErrConnLost, Detail: "the connection has closed", Err: c.Err()}
}

// Hold marks c in use until release is called (once; later calls do
// nothing). A session opened on SSH() directly is not counted as use, so a
// long-lived one (the node agent's) holds the connection: the pool does not
// close it as idle under the process it runs.
func (c *Client) Hold() (release func()) {
	c.held.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			c.lastUsed.Store(time.Now().UnixNano())
			c.held.Add(-1)
		})
	}
}

func (c *Client) idleSince() (time.Time, bool) {
	if len(c.sessions) > 0 || c.held.Load() > 0 {
		return time.Time{}, false
	}
	return time.Unix(0, c.lastUsed.Load()), true
}

// legacyEncryptedPEM reports whether key is a PEM block encrypted the old
// way (a Proc-Type: 4,ENCRYPTED header).
func legacyEncryptedPEM(key []byte) bool {
	block, _ := pem.Decode(key)
	return block != nil && block.Headers["Proc-Type"] == "4,ENCRYPTED"
}
