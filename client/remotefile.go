package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/filesync"
)

// fileWindow is how many chunks of one file are in flight.
const fileWindow = 8

// handleTimeout bounds the wait for one chunk's answer.
const handleTimeout = 60 * time.Second

// handleStream is the client end of an open remote file: requests go to the
// handle's subject, answers come back on one inbox.
type handleStream struct {
	ctx    context.Context
	nc     *nats.Conn
	subj   string
	handle string
	inbox  string
	sub    *nats.Subscription
}

func (r *remoteFS) openHandle(ctx context.Context, op string, req api.FSRequest) (*handleStream, error) {
	var rep api.FSHandleReply
	if err := r.call(ctx, op, req, &rep); err != nil {
		return nil, err
	}
	h := &handleStream{ctx: ctx, nc: r.c.nc, subj: rep.HandleSubject, handle: rep.Handle, inbox: r.c.nc.NewInbox()}
	sub, err := h.nc.SubscribeSync(h.inbox)
	if err != nil {
		h.finish(api.FSClose)
		return nil, fmt.Errorf("client: %w", err)
	}
	h.sub = sub
	return h, nil
}

func (h *handleStream) msg(op string, off int64) *nats.Msg {
	m := nats.NewMsg(h.subj + "." + op)
	m.Reply = h.inbox
	m.Header.Set(api.HdrHandle, h.handle)
	m.Header.Set(api.HdrOffset, strconv.FormatInt(off, 10))
	return m
}

func (h *handleStream) next() (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(h.ctx, handleTimeout)
	defer cancel()
	m, err := h.sub.NextMsgWithContext(ctx)
	if err != nil {
		if h.ctx.Err() != nil {
			return nil, h.ctx.Err()
		}
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "the gateway stopped answering during a file transfer", Err: err}
	}
	return m, msgError(m)
}

// finish sends a closing operation and waits for its answer.
func (h *handleStream) finish(op string) error {
	if h.sub != nil {
		_ = h.sub.Unsubscribe()
	}
	m := nats.NewMsg(h.subj + "." + op)
	m.Header.Set(api.HdrHandle, h.handle)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), handleTimeout)
	defer cancel()
	rep, err := h.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return &rh.Error{Code: rh.EUNAVAILABLE, Message: op + ": the gateway did not answer", Err: err}
	}
	return msgError(rep)
}

func (r *remoteFS) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	h, err := r.openHandle(ctx, api.FSOpen, r.req(p))
	if err != nil {
		return nil, err
	}
	return &remoteReader{h: h, pending: map[int64]chunk{}}, nil
}

type chunk struct {
	data []byte
	eof  bool
}

// remoteReader reads ahead fileWindow chunks and delivers them in order.
type remoteReader struct {
	h        *handleStream
	next     int64 // offset of the next request
	deliver  int64 // offset of the next byte to hand out
	inflight int
	eofSeen  bool
	pending  map[int64]chunk
	buf      []byte
	done     bool
	err      error
	closed   bool
}

func (r *remoteReader) Read(p []byte) (int, error) {
	for {
		if len(r.buf) > 0 {
			n := copy(p, r.buf)
			r.buf = r.buf[n:]
			return n, nil
		}
		if r.done {
			return 0, io.EOF
		}
		if c, ok := r.pending[r.deliver]; ok {
			delete(r.pending, r.deliver)
			r.buf, r.done = c.data, c.eof
			r.deliver += int64(len(c.data))
			if len(c.data) == 0 && !c.eof {
				r.err = fmt.Errorf("client: empty read at %d", r.deliver)
			}
			continue
		}
		if r.err != nil {
			return 0, r.err
		}
		for !r.eofSeen && r.inflight < fileWindow {
			m := r.h.msg(api.FSRead, r.next)
			m.Header.Set(api.HdrLength, strconv.Itoa(api.FileChunk))
			if err := r.h.nc.PublishMsg(m); err != nil {
				r.err = fmt.Errorf("client: read: %w", err)
				return 0, r.err
			}
			r.next += api.FileChunk
			r.inflight++
		}
		m, err := r.h.next()
		if m != nil {
			r.inflight--
		}
		if err != nil {
			r.err = err
			return 0, err
		}
		off, _ := strconv.ParseInt(m.Header.Get(api.HdrOffset), 10, 64)
		eof := m.Header.Get(api.HdrEOF) != ""
		r.pending[off] = chunk{data: m.Data, eof: eof}
		if eof {
			r.eofSeen = true
		}
	}
}

// ReadAt implements io.ReaderAt, so a delta transfer from the node reads
// only the blocks it needs: each chunk is one request to the handle, with up
// to fileWindow in flight. It is independent of Read's read-ahead.
func (r *remoteReader) ReadAt(p []byte, off int64) (int, error) {
	type part struct {
		n   int
		eof bool
		err error
	}
	nparts := (len(p) + api.FileChunk - 1) / api.FileChunk
	parts := make([]part, nparts)
	sem := make(chan struct{}, fileWindow)
	var wg sync.WaitGroup
	for i := range nparts {
		lo := i * api.FileChunk
		hi := min(lo+api.FileChunk, len(p))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m := nats.NewMsg(r.h.subj + "." + api.FSRead)
			m.Header.Set(api.HdrHandle, r.h.handle)
			m.Header.Set(api.HdrOffset, strconv.FormatInt(off+int64(lo), 10))
			m.Header.Set(api.HdrLength, strconv.Itoa(hi-lo))
			ctx, cancel := context.WithTimeout(r.h.ctx, handleTimeout)
			defer cancel()
			rep, err := r.h.nc.RequestMsgWithContext(ctx, m)
			if err != nil {
				parts[i].err = &rh.Error{Code: rh.EUNAVAILABLE, Message: "the gateway stopped answering during a file transfer", Err: err}
				return
			}
			if err := msgError(rep); err != nil {
				parts[i].err = err
				return
			}
			parts[i].n = copy(p[lo:hi], rep.Data)
			parts[i].eof = rep.Header.Get(api.HdrEOF) != ""
		})
	}
	wg.Wait()
	n := 0
	for i, pt := range parts {
		n += pt.n
		if pt.err != nil {
			return n, pt.err
		}
		lo := i * api.FileChunk
		if pt.n < min(lo+api.FileChunk, len(p))-lo {
			return n, io.EOF
		}
		if pt.eof && i == nparts-1 {
			return n, io.EOF
		}
	}
	return n, nil
}

func (r *remoteReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	return r.h.finish(api.FSClose)
}

func (r *remoteFS) Create(ctx context.Context, p string, perm fs.FileMode) (filesync.FileWriter, error) {
	req := r.req(p)
	req.Perm = uint32(perm)
	h, err := r.openHandle(ctx, api.FSCreate, req)
	if err != nil {
		return nil, err
	}
	return &remoteWriter{h: h, buf: make([]byte, 0, api.FileChunk)}, nil
}

// remoteWriter sends chunks with up to fileWindow unanswered; the gateway
// writes them in order and Commit renames the file into place.
type remoteWriter struct {
	h        *handleStream
	buf      []byte
	off      int64
	inflight int
	err      error
	done     bool
}

func (w *remoteWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("client: write after commit or abort")
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), api.FileChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == api.FileChunk {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *remoteWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	for w.inflight >= fileWindow {
		if err := w.waitOne(); err != nil {
			return err
		}
	}
	m := w.h.msg(api.FSWrite, w.off)
	m.Data = w.buf
	// PublishMsg copies the data into the connection's buffer: buf is free after.
	if err := w.h.nc.PublishMsg(m); err != nil {
		w.err = fmt.Errorf("client: write: %w", err)
		return w.err
	}
	w.off += int64(len(w.buf))
	w.inflight++
	w.buf = w.buf[:0]
	return nil
}

func (w *remoteWriter) waitOne() error {
	m, err := w.h.next()
	if m != nil {
		w.inflight--
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *remoteWriter) Commit() error {
	if w.done {
		return errors.New("client: commit after commit or abort")
	}
	err := w.flush()
	for err == nil && w.inflight > 0 {
		err = w.waitOne()
	}
	if err != nil {
		_ = w.Abort()
		return err
	}
	w.done = true
	return w.h.finish(api.FSCommit)
}

func (w *remoteWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.h.finish(api.FSAbort)
}
