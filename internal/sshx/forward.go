package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ForwardEventKind names what happened to a forward.
type ForwardEventKind string

// The events a forward reports, for the user to see.
const (
	// ForwardConnected: the SSH connection is up (again, after ForwardLost).
	ForwardConnected ForwardEventKind = "connected"
	// ForwardLost: the SSH connection dropped; the forward redials.
	ForwardLost ForwardEventKind = "lost"
	// ForwardRetrying: a redial failed and will be tried again after Wait.
	ForwardRetrying ForwardEventKind = "retrying"
	// ForwardRefused: the node could not open a connection to the remote
	// address (nothing listening there, most often); the local connection
	// was closed and the forward goes on.
	ForwardRefused ForwardEventKind = "refused"
)

// ForwardEvent is one change in a forward's state.
type ForwardEvent struct {
	Kind ForwardEventKind
	// Err says why, for lost, retrying and refused.
	Err error
	// Wait is the delay before the next attempt (retrying).
	Wait time.Duration
}

// ForwardOptions tune a forward. The zero value is ready.
type ForwardOptions struct {
	// OnEvent, if set, receives the forward's events, never concurrently.
	OnEvent func(ForwardEvent)
	// MinBackoff and MaxBackoff bound the wait between redials; defaults
	// 250 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// ConnWait bounds how long an accepted connection waits for a lost
	// SSH connection to come back before it is closed; default 2 min.
	ConnWait time.Duration
}

// ErrForwardClosed is Forwarding.Err after Close or the end of its context.
var ErrForwardClosed = errors.New("sshx: forward closed")

// Forwarding carries each connection accepted on a local listener to an
// address as the node sees it ("localhost:8888" is the node's own port),
// through one SSH connection to the node (direct-tcpip channels, as
// `ssh -L`). When that connection drops it dials again with backoff, while
// the listener stays open, so a client of the tunnel only sees the
// connections that were open at the drop end. A refused login or a changed
// host key ends the forward: retrying cannot fix either.
type Forwarding struct {
	d      *Dialer
	t      Target
	ln     net.Listener
	remote string
	o      ForwardOptions
	ctx    context.Context
	cancel context.CancelFunc

	evMu sync.Mutex // serialises OnEvent

	mu    sync.Mutex
	cur   *Client       // nil while redialling
	ready chan struct{} // closed when cur is set after a redial
	open  map[net.Conn]struct{}

	wg   sync.WaitGroup
	done chan struct{}
	err  error
}

// Forward dials t, then serves ln until ctx ends, Close is called or the
// node can no longer be logged in to. It returns the first dial's error
// (closing ln) so a wrong key or an unreachable node is reported at once.
// The Forwarding owns ln and closes it when it ends.
func Forward(ctx context.Context, d *Dialer, t Target, ln net.Listener, remote string, o ForwardOptions) (*Forwarding, error) {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.ConnWait <= 0 {
		o.ConnWait = 2 * time.Minute
	}
	c, err := d.Dial(ctx, t)
	if err != nil {
		ln.Close()
		return nil, err
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &Forwarding{
		d: d, t: t, ln: ln, remote: remote, o: o, ctx: fctx, cancel: cancel,
		cur: c, ready: make(chan struct{}), open: map[net.Conn]struct{}{}, done: make(chan struct{}),
	}
	close(f.ready)
	f.wg.Go(func() { f.supervise(c) })
	f.wg.Go(f.accept)
	go func() {
		<-fctx.Done()
		f.ln.Close()
		f.mu.Lock()
		if f.cur != nil {
			f.cur.Close()
		}
		for lc := range f.open {
			lc.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		f.mu.Lock()
		if f.err == nil {
			f.err = ErrForwardClosed
		}
		f.mu.Unlock()
		close(f.done)
	}()
	return f, nil
}

// Addr is the local address the forward listens on.
func (f *Forwarding) Addr() net.Addr { return f.ln.Addr() }

// Done is closed when the forward has ended and every connection it
// carried is closed.
func (f *Forwarding) Done() <-chan struct{} { return f.done }

// Err tells why the forward ended, once Done is closed: ErrForwardClosed
// after Close or the end of its context, else what made it give up.
func (f *Forwarding) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Close ends the forward and waits until it has.
func (f *Forwarding) Close() error {
	f.cancel()
	<-f.done
	return nil
}

func (f *Forwarding) event(e ForwardEvent) {
	if f.o.OnEvent == nil {
		return
	}
	f.evMu.Lock()
	defer f.evMu.Unlock()
	f.o.OnEvent(e)
}

// fail ends the forward with err.
func (f *Forwarding) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.cancel()
}

// supervise redials whenever the connection ends.
func (f *Forwarding) supervise(c *Client) {
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-c.Done():
		}
		if f.ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		f.cur, f.ready = nil, make(chan struct{})
		f.mu.Unlock()
		f.event(ForwardEvent{Kind: ForwardLost, Err: &Error{Op: "forward", Target: c.Target(), Kind: ErrConnLost, Detail: "the connection has closed", Err: c.Err()}})
		next, err := f.redial()
		if err != nil {
			f.fail(err)
			return
		}
		f.mu.Lock()
		f.cur = next
		close(f.ready)
		f.mu.Unlock()
		if f.ctx.Err() != nil {
			next.Close()
			return
		}
		f.event(ForwardEvent{Kind: ForwardConnected})
		c = next
	}
}

// redial dials until it succeeds, the forward ends, or the node refuses
// us for good.
func (f *Forwarding) redial() (*Client, error) {
	wait := f.o.MinBackoff
	for {
		c, err := f.d.Dial(f.ctx, f.t)
		if err == nil {
			return c, nil
		}
		if f.ctx.Err() != nil {
			return nil, ErrForwardClosed
		}
		if errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrHostKeyChanged) {
			return nil, err
		}
		f.event(ForwardEvent{Kind: ForwardRetrying, Err: err, Wait: wait})
		select {
		case <-f.ctx.Done():
			return nil, ErrForwardClosed
		case <-time.After(wait):
		}
		wait = min(2*wait, f.o.MaxBackoff)
	}
}

func (f *Forwarding) accept() {
	backoff := 5 * time.Millisecond
	for {
		lc, err := f.ln.Accept()
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			f.fail(fmt.Errorf("sshx: forward: accept on %s: %w", f.ln.Addr(), err))
			return
		}
		backoff = 5 * time.Millisecond
		f.mu.Lock()
		if f.ctx.Err() != nil {
			f.mu.Unlock()
			lc.Close()
			return
		}
		f.open[lc] = struct{}{}
		f.mu.Unlock()
		f.wg.Go(func() {
			defer func() {
				f.mu.Lock()
				delete(f.open, lc)
				f.mu.Unlock()
				lc.Close()
			}()
			f.carry(lc)
		})
	}
}

func isTemporaryAccept(err error) bool {
	var se interface{ Temporary() bool }
	return errors.As(err, &se) && se.Temporary()
}

// client returns the live connection, waiting up to ConnWait for a redial.
func (f *Forwarding) client() *Client {
	timer := time.NewTimer(f.o.ConnWait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		c, ready := f.cur, f.ready
		f.mu.Unlock()
		if c != nil && c.alive() {
			return c
		}
		wait, again := ready, (<-chan time.Time)(nil)
		if c != nil {
			// Dead, and the supervisor is about to replace it: look again
			// shortly (ready is the closed channel of the dead one).
			wait, again = nil, time.After(10*time.Millisecond)
		}
		select {
		case <-wait:
		case <-again:
		case <-f.ctx.Done():
			return nil
		case <-timer.C:
			return nil
		}
	}
}

// carry connects lc to the remote address through the node and copies
// both ways until both sides are done.
func (f *Forwarding) carry(lc net.Conn) {
	var rc net.Conn
	var c *Client
	for attempt := 0; ; attempt++ {
		if c = f.client(); c == nil {
			return
		}
		var err error
		rc, err = c.SSH().DialContext(f.ctx, "tcp", f.remote)
		if err == nil {
			break
		}
		if f.ctx.Err() != nil {
			return
		}
		if c.alive() {
			// The node answered: it cannot reach the remote address.
			f.event(ForwardEvent{Kind: ForwardRefused, Err: &Error{Op: "forward to " + f.remote + " through", Target: c.Target(), Detail: err.Error(), Err: err}})
			return
		}
		if attempt == 2 {
			return
		}
		// The connection died under us: wait for the redial and try again.
	}
	defer rc.Close()
	// A dropped SSH connection ends the connections it carried, even one
	// whose local client sits idle (a browser's kept-alive connection):
	// its next request then goes through the redialled connection.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-c.Done():
			lc.Close()
			rc.Close()
		case <-finished:
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(rc, lc) })
	wg.Go(func() { copyHalf(lc, rc) })
	wg.Wait()
}

// copyHalf copies src to dst, then half-closes dst so the other side sees
// the end of the stream while answers still flow back.
func copyHalf(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = dst.Close()
}
