package sshx

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Pool defaults.
const (
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultIdleTimeout       = 5 * time.Minute
	// DefaultMaxDialsPerHost stays under OpenSSH's MaxStartups default
	// (10:30:100): beyond 10 unauthenticated connections sshd drops new
	// ones at random, which would read as a node refusing us.
	DefaultMaxDialsPerHost = 8
)

// ErrPoolClosed is returned by a closed Pool.
var ErrPoolClosed = errors.New("sshx: pool closed")

// Pool keeps one connection per target (Target.Key: user@host:port, route,
// credentials and host-key policy) and
// multiplexes sessions over it. A connection that failed is replaced on
// the next use; one with no session and no Hold for IdleTimeout is closed.
// Safe for concurrent use.
type Pool struct {
	// Dialer dials new connections; its KeepaliveInterval defaults to
	// DefaultKeepaliveInterval here. Must be set before first use.
	Dialer *Dialer
	// IdleTimeout closes connections with no session for this long.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// OnDial, when set, is told of every dial the pool made: how long it
	// took and its error (nil: connected). Set before first use.
	OnDial func(took time.Duration, err error)
	// MaxDialsPerHost bounds the connections being set up to one host:port
	// at once (many clusters on the same node each dial it); the others
	// wait their turn, which does not count against ConnectTimeout.
	// Default DefaultMaxDialsPerHost.
	MaxDialsPerHost int

	dials atomic.Int64
	slots sync.Map // host:port -> chan struct{}, its dials under way

	mu      sync.Mutex
	conns   map[string]*poolEntry
	closed  bool
	janitor chan struct{} // closed by Close to stop the idle sweeper
}

type poolEntry struct {
	ready  chan struct{} // closed when the dial finished
	client *Client
	err    error
}

// Dials counts the connections the pool has dialed, successful or not.
func (p *Pool) Dials() int64 { return p.dials.Load() }

// Get returns the pooled connection for t, dialing when there is none or
// it has died. Concurrent callers for one target share a single dial. The
// Client belongs to the pool: do not Close it.
func (p *Pool) Get(ctx context.Context, t Target) (*Client, error) {
	if t.Port == 0 {
		t.Port = 22
	}
	key := t.Key()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if p.conns == nil {
		p.conns = map[string]*poolEntry{}
		p.janitor = make(chan struct{})
		go p.sweep(p.janitor)
	}
	e := p.conns[key]
	if e != nil {
		select {
		case <-e.ready:
			if e.err != nil || !e.client.alive() {
				e = nil
			}
		default: // a dial is under way: share it
		}
	}
	if e == nil {
		e = &poolEntry{ready: make(chan struct{})}
		p.conns[key] = e
		p.dials.Add(1)
		// The dial outlives this caller's cancellation, since other
		// callers may be waiting on it; ConnectTimeout bounds it.
		go p.dial(context.WithoutCancel(ctx), key, t, e)
	}
	p.mu.Unlock()

	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, classify(ctx, "dial", t.String(), ctx.Err())
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.client, nil
}

func (p *Pool) dial(ctx context.Context, key string, t Target, e *poolEntry) {
	d := *p.Dialer
	if d.KeepaliveInterval == 0 {
		d.KeepaliveInterval = DefaultKeepaliveInterval
	}
	release, ok := p.dialSlot(t)
	start := time.Now()
	if ok {
		e.client, e.err = d.Dial(ctx, t)
		release()
	} else {
		e.err = ErrPoolClosed
	}
	if p.OnDial != nil {
		p.OnDial(time.Since(start), e.err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.err != nil && p.conns[key] == e {
		delete(p.conns, key) // failures are not cached: the next use retries
	}
	if e.err == nil && p.closed {
		e.client.Close()
		e.client, e.err = nil, ErrPoolClosed
	}
	close(e.ready)
}

// dialSlot waits for a turn to dial t's host (see MaxDialsPerHost); ok is
// false when the pool closed first.
func (p *Pool) dialSlot(t Target) (release func(), ok bool) {
	n := p.MaxDialsPerHost
	if n <= 0 {
		n = DefaultMaxDialsPerHost
	}
	v, _ := p.slots.LoadOrStore(net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), make(chan struct{}, n))
	slots := v.(chan struct{})
	p.mu.Lock()
	closed := p.janitor
	p.mu.Unlock()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, true
	case <-closed:
		return nil, false
	}
}

// Run runs req on t's pooled connection. If the connection turns out to
// be dead before the command started, it redials once, so a node that
// restarted since the last use costs no error.
func (p *Pool) Run(ctx context.Context, t Target, req RunRequest) (int, error) {
	for attempt := 0; ; attempt++ {
		c, err := p.Get(ctx, t)
		if err != nil {
			return -1, err
		}
		code, err := Run(ctx, c, req)
		var se *Error
		if attempt == 0 && errors.Is(err, ErrConnLost) && errors.As(err, &se) && se.Op == "open session on" {
			c.Close()
			continue
		}
		return code, err
	}
}

// GetFacts collects t's facts over its pooled connection.
func (p *Pool) GetFacts(ctx context.Context, t Target) (Facts, error) {
	c, err := p.Get(ctx, t)
	if err != nil {
		return Facts{}, err
	}
	return GetFacts(ctx, c)
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultIdleTimeout
}

// sweep closes idle and dead connections.
func (p *Pool) sweep(stop chan struct{}) {
	every := min(max(p.idleTimeout()/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		for key, e := range p.conns {
			select {
			case <-e.ready:
			default:
				continue
			}
			if e.client == nil {
				continue
			}
			since, idle := e.client.idleSince()
			if !e.client.alive() || (idle && time.Since(since) > p.idleTimeout()) {
				e.client.Close()
				delete(p.conns, key)
			}
		}
		p.mu.Unlock()
	}
}

// Close closes every pooled connection; running commands fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.janitor != nil {
		close(p.janitor)
	}
	for key, e := range p.conns {
		select {
		case <-e.ready:
			if e.client != nil {
				e.client.Close()
			}
		default: // dial() closes it when it finishes
		}
		delete(p.conns, key)
	}
	return nil
}

// Len is the number of connections currently pooled.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
