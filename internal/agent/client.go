package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// Client is the gateway's end of one agent connection. It is safe for
// concurrent use; every call is its own stream on the shared connection.
type Client struct {
	conn     *conn
	rwc      io.ReadWriteCloser
	peer     Hello
	protocol int
	nextID   atomic.Uint32
	// OnRoundTrip, when set before the first request, is told the time of
	// each request-answer round trip (one of RoundTripOps), failed or not.
	OnRoundTrip func(op string, d time.Duration)
}

// RoundTripOps are the agent's request-answer operations (runs and open
// files are streams, not round trips).
var RoundTripOps = []string{"ping", "facts", "status", "fs.stat", "fs.walk", "fs.readat", "fs.mkdirall",
	"fs.remove", "fs.symlink", "fs.chmod", "fs.chtimes", "fs.hashblocks", "fs.writefiles"}

// ClientOptions configure NewClientOptions.
type ClientOptions struct {
	// Logger receives protocol warnings. Default slog.Default().
	Logger *slog.Logger
}

// NewClient performs the handshake over rw (an SSH session's stdout and
// stdin, typically) and returns a Client. Incompatible agents are refused
// with a *VersionError (errors.Is ErrIncompatible; ErrUpgradeNeeded when the
// agent is too old). rw is closed when the Client is.
func NewClient(ctx context.Context, rw io.ReadWriteCloser) (*Client, error) {
	return NewClientOptions(ctx, rw, ClientOptions{})
}

// NewClientOptions is NewClient with options.
func NewClientOptions(ctx context.Context, rw io.ReadWriteCloser, opts ClientOptions) (*Client, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{rwc: rw}
	c.conn = newConn(context.Background(), rw, rw, rw, log, false)
	peer, v, err := c.conn.handshake(ctx, localHello("client"))
	if err != nil {
		c.conn.fail(err)
		return nil, err
	}
	if peer.Role != "agent" {
		c.conn.fail(nil)
		return nil, fmt.Errorf("agent: handshake: peer is a %q, not an agent", peer.Role)
	}
	c.peer, c.protocol = peer, v
	go c.conn.readLoop()
	return c, nil
}

// Hello is what the agent announced: its version, protocol range, OS, arch.
func (c *Client) Hello() Hello { return c.peer }

// Protocol is the negotiated protocol version.
func (c *Client) Protocol() int { return c.protocol }

// Close ends the connection; the agent sees EOF, kills its running commands
// and exits.
func (c *Client) Close() error {
	c.conn.fail(ErrClosed)
	return nil
}

// Done is closed when the connection has ended, for any reason (Close, the
// agent dying, the SSH connection dropping).
func (c *Client) Done() <-chan struct{} { return c.conn.dead }

// Err tells why the connection ended, once Done is closed.
func (c *Client) Err() error { return c.conn.Err() }

// open starts a stream with the given request.
func (c *Client) open(req any) (*stream, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("agent: encode request: %w", err)
	}
	s := newStream(c.conn, c.nextID.Add(2)-1) // odd ids: 1, 3, 5, ...
	if err := c.conn.register(s); err != nil {
		return nil, err
	}
	if err := c.conn.sendCtrl(frameOpen, s.id, b); err != nil {
		c.conn.forget(s)
		return nil, err
	}
	return s, nil
}

func opName(req any) string {
	b, _ := json.Marshal(req)
	var h opHeader
	_ = json.Unmarshal(b, &h)
	return h.Op
}

// call runs a request whose answer is a single RESULT.
func (c *Client) call(ctx context.Context, req any, out any) error {
	_, err := c.callData(ctx, req, out, 0)
	return err
}

// callData runs a request whose answer may include DATA (collected, up to
// max bytes) before the RESULT.
func (c *Client) callData(ctx context.Context, req any, out any, max int) ([]byte, error) {
	op := opName(req)
	if c.OnRoundTrip != nil {
		start := time.Now()
		defer func() { c.OnRoundTrip(op, time.Since(start)) }()
	}
	s, err := c.open(req)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", op, err)
	}
	defer c.conn.forget(s)
	var buf bytes.Buffer
	for {
		e, err := s.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, c.abandon(s, op, ctx)
			}
			return nil, fmt.Errorf("agent: %s: %w", op, err)
		}
		switch e.typ {
		case frameData:
			if buf.Len()+len(e.data) > max {
				s.reset("response too large")
				return nil, fmt.Errorf("agent: %s: response larger than %d bytes", op, max)
			}
			buf.Write(e.data)
			s.consumed(len(e.data))
		case frameResult:
			return buf.Bytes(), decodeResult(op, e.data, out)
		case frameReset:
			return nil, fmt.Errorf("agent: %s: %w", op, &StreamError{Msg: string(e.data)})
		}
	}
}

func decodeResult(op string, payload []byte, out any) error {
	var r resultBody
	if err := json.Unmarshal(payload, &r); err != nil {
		return fmt.Errorf("agent: %s: malformed RESULT: %w", op, err)
	}
	if r.Error != "" {
		return &RemoteError{Op: op, Code: r.Code, Msg: r.Error}
	}
	if out != nil && len(r.Value) > 0 {
		if err := json.Unmarshal(r.Value, out); err != nil {
			return fmt.Errorf("agent: %s: malformed result value: %w", op, err)
		}
	}
	return nil
}

// Ping makes one round trip to the agent.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, opHeader{Op: "ping"}, nil)
}
