package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// maxQueuedData bounds the DATA bytes waiting for the writer across all
// streams; senders block beyond it, so a fast producer cannot queue
// unboundedly behind a slow transport.
const maxQueuedData = 1 << 20

// maxStreams bounds concurrently open streams per connection on the agent.
const maxStreams = 4096

// maxEvents bounds the non-DATA frames queued on one stream (DATA is bounded
// by the window); a peer exceeding it is misbehaving.
const maxEvents = 64

// ErrClosed is returned for operations on a connection that has ended.
var ErrClosed = errors.New("agent: connection closed")

// errPeerDone is returned when sending on a stream the peer has finished.
var errPeerDone = errors.New("agent: stream closed by peer")

type outFrame struct {
	b    []byte
	data bool
}

// conn is the multiplexer shared by both ends: one read loop that never
// blocks (it only queues), one writer goroutine draining a FIFO, and streams.
type conn struct {
	r      *bufio.Reader
	w      io.Writer
	closer io.Closer
	log    *slog.Logger
	server bool
	onOpen func(s *stream, req []byte) // agent side only

	mu      sync.Mutex
	streams map[uint32]*stream
	err     error
	dead    chan struct{}
	ctx     context.Context // parent of agent-side stream contexts

	// Outbound FIFO. One queue keeps each goroutine's frames in the order it
	// sent them (DATA before the RESULT that ends a stream). Control frames
	// never block, so the read loop can answer without risking a deadlock
	// with a peer that is itself blocked writing to us.
	omu     sync.Mutex
	ocond   *sync.Cond // writer waits for frames
	space   *sync.Cond // DATA senders wait for queue space
	out     []outFrame
	outData int
	closed  bool
}

func newConn(ctx context.Context, r io.Reader, w io.Writer, closer io.Closer, log *slog.Logger, server bool) *conn {
	c := &conn{
		r: bufio.NewReaderSize(r, 64<<10), w: w, closer: closer, log: log, server: server,
		streams: map[uint32]*stream{}, dead: make(chan struct{}), ctx: ctx,
	}
	c.ocond = sync.NewCond(&c.omu)
	c.space = sync.NewCond(&c.omu)
	go c.writeLoop()
	return c
}

func (c *conn) writeLoop() {
	bw := bufio.NewWriterSize(c.w, 128<<10)
	for {
		c.omu.Lock()
		for len(c.out) == 0 && !c.closed {
			c.ocond.Wait()
		}
		if c.closed {
			c.omu.Unlock()
			return
		}
		batch := c.out
		c.out = nil
		c.omu.Unlock()

		var err error
		sent := 0
		for _, f := range batch {
			if err == nil {
				_, err = bw.Write(f.b)
			}
			if f.data {
				sent += len(f.b)
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		c.omu.Lock()
		c.outData -= sent
		c.space.Broadcast()
		c.omu.Unlock()
		if err != nil {
			c.fail(fmt.Errorf("agent: write: %w", err))
			return
		}
	}
}

// enqueue queues raw bytes for the writer. DATA blocks while the queue is
// full; control frames never block.
func (c *conn) enqueue(b []byte, data bool) error {
	c.omu.Lock()
	for data && c.outData >= maxQueuedData && !c.closed {
		c.space.Wait()
	}
	if c.closed {
		c.omu.Unlock()
		return c.Err()
	}
	c.out = append(c.out, outFrame{b, data})
	if data {
		c.outData += len(b)
	}
	c.ocond.Signal()
	c.omu.Unlock()
	return nil
}

func (c *conn) sendCtrl(typ byte, id uint32, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("agent: %s payload of %d bytes exceeds the %d-byte frame limit", frameNames[typ], len(payload), MaxPayload)
	}
	return c.enqueue(encodeFrame(typ, id, payload), false)
}

func (c *conn) sendJSON(typ byte, id uint32, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: encode %s: %w", frameNames[typ], err)
	}
	return c.sendCtrl(typ, id, b)
}

// Err tells why the connection ended, or nil while it is alive.
func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection: every stream sees err, the writer stops and the
// transport is closed so blocked reads and writes return.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = ErrClosed
	} else if !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.err = err
	streams := c.streams
	c.streams = map[uint32]*stream{}
	close(c.dead)
	c.mu.Unlock()

	c.omu.Lock()
	c.closed = true
	c.ocond.Broadcast()
	c.space.Broadcast()
	c.omu.Unlock()
	for _, s := range streams {
		s.connDied(err)
	}
	if c.closer != nil {
		_ = c.closer.Close()
	}
}

func (c *conn) lookup(id uint32) *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

func (c *conn) forget(s *stream) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	c.mu.Unlock()
}

// register adds a stream; it fails when the connection is dead.
func (c *conn) register(s *stream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if _, dup := c.streams[s.id]; dup {
		return fmt.Errorf("stream id %d already in use", s.id)
	}
	if len(c.streams) >= maxStreams {
		return fmt.Errorf("too many open streams (%d)", maxStreams)
	}
	c.streams[s.id] = s
	return nil
}

func (c *conn) readLoop() {
	defer func() {
		// A bug in dispatch must not take the whole agent down with it.
		if p := recover(); p != nil {
			c.log.Error("agent: read loop panicked", "panic", p)
			c.fail(fmt.Errorf("internal error: %v", p))
		}
	}()
	for {
		f, err := readFrame(c.r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.log.Warn("agent: connection read failed", "err", err)
			}
			c.fail(err)
			return
		}
		c.dispatch(f)
	}
}

// dispatch routes one frame. It must never block: it runs on the read loop.
// A malformed frame resets its stream only; the framing itself is intact.
func (c *conn) dispatch(f frame) {
	if f.stream == 0 {
		if f.typ == frameReset {
			c.fail(fmt.Errorf("peer closed the connection: %s", resetMessage(f.payload)))
			return
		}
		c.log.Debug("agent: ignoring frame on stream 0", "frame", f.String())
		return
	}
	if f.typ == frameOpen {
		if !c.server {
			_ = c.sendJSON(frameReset, f.stream, resetBody{Error: "the client accepts no OPEN frames"})
			return
		}
		s := newStream(c, f.stream)
		if err := c.register(s); err != nil {
			_ = c.sendJSON(frameReset, f.stream, resetBody{Error: err.Error()})
			return
		}
		c.onOpen(s, f.payload) // starts the handler goroutine; must not block
		return
	}
	s := c.lookup(f.stream)
	if s == nil {
		return // a finished stream: late frames are normal after a reset
	}
	switch f.typ {
	case frameData:
		if len(f.payload) < 1 {
			c.protocolError(s, "DATA frame without a channel byte")
			return
		}
		if err := s.pushData(f.payload[0], f.payload[1:]); err != nil {
			c.protocolError(s, err.Error())
		}
	case frameWindow:
		if len(f.payload) != 4 {
			c.protocolError(s, fmt.Sprintf("WINDOW frame with %d payload bytes, want 4", len(f.payload)))
			return
		}
		if err := s.addCredit(binary.BigEndian.Uint32(f.payload)); err != nil {
			c.protocolError(s, err.Error())
		}
	case frameEOF:
		if !c.server {
			c.protocolError(s, "unexpected EOF frame from the agent")
			return
		}
		if err := s.pushEvent(event{typ: frameEOF, data: f.payload}, false); err != nil {
			c.protocolError(s, err.Error())
		}
	case frameReply, frameResult:
		if c.server {
			c.protocolError(s, fmt.Sprintf("unexpected %s frame from the client", frameNames[f.typ]))
			return
		}
		if err := s.pushEvent(event{typ: f.typ, data: f.payload}, f.typ == frameResult); err != nil {
			c.protocolError(s, err.Error())
		}
	case frameReset:
		s.peerReset(resetMessage(f.payload))
	default:
		c.protocolError(s, fmt.Sprintf("unknown frame type %d", f.typ))
	}
}

// protocolError resets one stream after a malformed frame: the peer is told
// why and the local owner of the stream sees the same message.
func (c *conn) protocolError(s *stream, msg string) {
	c.log.Warn("agent: protocol error; resetting stream", "stream", s.id, "err", msg)
	_ = c.sendJSON(frameReset, s.id, resetBody{Error: "protocol error: " + msg})
	s.peerReset("protocol error: " + msg)
}

type resetBody struct {
	Error string `json:"error"`
}

func resetMessage(p []byte) string {
	var r resetBody
	if err := json.Unmarshal(p, &r); err != nil || r.Error == "" {
		return fmt.Sprintf("reset (%q)", trimJunk(p))
	}
	return r.Error
}

type event struct {
	typ  byte
	ch   byte
	data []byte
}

// stream is one request's half of the connection on either side.
type stream struct {
	id     uint32
	c      *conn
	ctx    context.Context // agent side: ends on RESET or connection loss
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	events    []event
	nctl      int // queued non-DATA events
	inUsed    int // window bytes received, not yet consumed
	ungranted int // window bytes consumed, not yet returned to the peer
	credit    int // window bytes we may still send
	peerDone  bool
	doneErr   error // why sending is over, once peerDone
	connErr   error // set when the connection died
	evCh      chan struct{}
	crCh      chan struct{}
}

func newStream(c *conn, id uint32) *stream {
	s := &stream{id: id, c: c, credit: defaultWindow, evCh: make(chan struct{}, 1), crCh: make(chan struct{}, 1)}
	parent := c.ctx
	if parent == nil {
		parent = context.Background()
	}
	s.ctx, s.cancel = context.WithCancelCause(parent)
	return s
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *stream) pushData(ch byte, data []byte) error {
	cost := len(data) + dataOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUsed+cost > defaultWindow {
		return fmt.Errorf("flow control window exceeded (%d bytes unconsumed, frame of %d)", s.inUsed, len(data))
	}
	s.inUsed += cost
	s.events = append(s.events, event{typ: frameData, ch: ch, data: data})
	wake(s.evCh)
	return nil
}

func (s *stream) pushEvent(e event, final bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nctl >= maxEvents {
		return fmt.Errorf("more than %d control frames queued", maxEvents)
	}
	s.nctl++
	s.events = append(s.events, e)
	if final {
		s.markDoneLocked(errPeerDone)
	}
	wake(s.evCh)
	return nil
}

func (s *stream) markDoneLocked(err error) {
	if !s.peerDone {
		s.peerDone = true
		s.doneErr = err
	}
	wake(s.crCh)
}

func (s *stream) addCredit(n uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == 0 || int64(s.credit)+int64(n) > 1<<30 {
		return fmt.Errorf("invalid WINDOW increment %d", n)
	}
	s.credit += int(n)
	wake(s.crCh)
	return nil
}

// peerReset ends the stream: the owner sees a RESET event, senders stop and
// the agent-side context is cancelled (killing a running command).
func (s *stream) peerReset(msg string) {
	err := &StreamError{Msg: msg}
	s.mu.Lock()
	s.events = append(s.events, event{typ: frameReset, data: []byte(msg)})
	s.markDoneLocked(err)
	wake(s.evCh)
	s.mu.Unlock()
	s.cancel(err)
}

func (s *stream) connDied(err error) {
	s.mu.Lock()
	s.connErr = err
	s.markDoneLocked(err)
	wake(s.evCh)
	s.mu.Unlock()
	s.cancel(err)
}

// next returns the stream's next event, in arrival order.
func (s *stream) next(ctx context.Context) (event, error) {
	for {
		s.mu.Lock()
		if len(s.events) > 0 {
			e := s.events[0]
			s.events[0] = event{}
			s.events = s.events[1:]
			if e.typ != frameData {
				s.nctl--
			}
			s.mu.Unlock()
			return e, nil
		}
		if s.connErr != nil {
			err := s.connErr
			s.mu.Unlock()
			return event{}, err
		}
		s.mu.Unlock()
		select {
		case <-s.evCh:
		case <-ctx.Done():
			return event{}, context.Cause(ctx)
		}
	}
}

// consumed returns window credit for n data bytes the owner has processed,
// in batches so small writes do not each cost a WINDOW frame.
func (s *stream) consumed(n int) {
	cost := n + dataOverhead
	s.mu.Lock()
	s.inUsed -= cost
	s.ungranted += cost
	g := 0
	if s.ungranted >= defaultWindow/4 {
		g, s.ungranted = s.ungranted, 0
	}
	s.mu.Unlock()
	if g > 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(g))
		_ = s.c.sendCtrl(frameWindow, s.id, b[:])
	}
}

// sendData sends p on channel ch, waiting for window credit as needed.
func (s *stream) sendData(ctx context.Context, ch byte, p []byte) error {
	for len(p) > 0 {
		n, err := s.waitCredit(ctx, min(len(p), maxChunk))
		if err != nil {
			return err
		}
		if err := s.c.enqueue(encodeFrame(frameData, s.id, []byte{ch}, p[:n]), true); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (s *stream) waitCredit(ctx context.Context, want int) (int, error) {
	for {
		s.mu.Lock()
		if s.peerDone {
			err := s.doneErr
			s.mu.Unlock()
			return 0, err
		}
		if s.credit > dataOverhead {
			n := min(want, s.credit-dataOverhead)
			s.credit -= n + dataOverhead
			s.mu.Unlock()
			return n, nil
		}
		s.mu.Unlock()
		select {
		case <-s.crCh:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

func (s *stream) reset(msg string) {
	_ = s.c.sendJSON(frameReset, s.id, resetBody{Error: msg})
}

// StreamError is a stream reset by the other side or after a protocol error.
type StreamError struct {
	Msg string
}

func (e *StreamError) Error() string { return "agent: stream reset: " + e.Msg }
