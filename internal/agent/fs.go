package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/rhq/rh/internal/filesync"
)

// Limits on bodies collected in memory.
const (
	maxListing   = 512 << 20 // a Walk's JSON
	maxPatchJSON = 64 << 20  // a Patch's JSON header
	maxReadAt    = 16 << 20  // one ReadAt
)

type fsReq struct {
	Op        string                `json:"op"`
	Path      string                `json:"path,omitempty"`
	Target    string                `json:"target,omitempty"`
	Perm      fs.FileMode           `json:"perm,omitempty"`
	MTime     time.Time             `json:"mtime,omitzero"`
	Walk      *filesync.WalkOptions `json:"walk,omitempty"`
	BlockSize int                   `json:"block_size,omitempty"`
	Offset    int64                 `json:"offset,omitempty"`
	Length    int                   `json:"length,omitempty"`
}

type eofBody struct {
	Commit bool `json:"commit"`
}

var local filesync.LocalFS

// ---- agent side ----

func (srv *server) fsStat(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	return local.Stat(s.ctx, req.Path)
}

func (srv *server) fsWalk(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	var opts filesync.WalkOptions
	if req.Walk != nil {
		opts = *req.Walk
	}
	ents, err := local.Walk(s.ctx, req.Path, opts)
	if err != nil {
		return nil, err
	}
	// The listing can exceed a frame: it travels as DATA.
	b, err := json.Marshal(ents)
	if err != nil {
		return nil, err
	}
	if err := s.sendData(s.ctx, chanIn, b); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (srv *server) fsOpen(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	f, err := os.Open(req.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := srv.conn.sendCtrl(frameReply, s.id, []byte("{}")); err != nil {
		return nil, err
	}
	if err := sendFile(s, f); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func sendFile(s *stream, r io.Reader) error {
	buf := make([]byte, maxChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := s.sendData(s.ctx, chanIn, buf[:n]); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (srv *server) fsReadAt(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	if req.Length < 0 || req.Length > maxReadAt || req.Offset < 0 {
		return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("readat: bad range %d+%d", req.Offset, req.Length)}
	}
	f, err := os.Open(req.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := sendFile(s, io.NewSectionReader(f, req.Offset, int64(req.Length))); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (srv *server) fsCreate(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	w, err := local.Create(s.ctx, req.Path, req.Perm)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	if err := srv.conn.sendCtrl(frameReply, s.id, []byte("{}")); err != nil {
		return nil, err
	}
	for {
		e, err := s.next(s.ctx)
		if err != nil {
			return nil, err
		}
		switch e.typ {
		case frameData:
			_, werr := w.Write(e.data)
			s.consumed(len(e.data))
			if werr != nil {
				return nil, fmt.Errorf("write %s: %w", req.Path, werr)
			}
		case frameEOF:
			var eb eofBody
			if len(e.data) > 0 {
				if err := json.Unmarshal(e.data, &eb); err != nil {
					return nil, &codedError{code: codeBadRequest, msg: "malformed EOF: " + err.Error()}
				}
			}
			if !eb.Commit {
				return struct{}{}, w.Abort()
			}
			if err := w.Commit(); err != nil {
				return nil, fmt.Errorf("commit %s: %w", req.Path, err)
			}
			return struct{}{}, nil
		case frameReset:
			return nil, &StreamError{Msg: string(e.data)}
		}
	}
}

func (srv *server) fsMkdirAll(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	return struct{}{}, local.MkdirAll(s.ctx, req.Path, req.Perm)
}

func (srv *server) fsRemove(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	return struct{}{}, local.Remove(s.ctx, req.Path)
}

func (srv *server) fsSymlink(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	return struct{}{}, local.Symlink(s.ctx, req.Target, req.Path)
}

func (srv *server) fsChmod(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	return struct{}{}, local.Chmod(s.ctx, req.Path, req.Perm)
}

func (srv *server) fsChtimes(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	return struct{}{}, local.Chtimes(s.ctx, req.Path, req.MTime)
}

func (srv *server) fsHashBlocks(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	sums, err := local.HashBlocks(s.ctx, req.Path, req.BlockSize)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(sums)
	if err != nil {
		return nil, err
	}
	if err := s.sendData(s.ctx, chanIn, b); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// fsPatch reads its body as: 4-byte big-endian length, the Patch as JSON,
// then the literal blocks' content until EOF.
func (srv *server) fsPatch(s *stream, payload []byte) (any, error) {
	var req fsReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	body := &streamReader{ctx: s.ctx, s: s, op: "patch"}
	var hdr [4]byte
	if _, err := io.ReadFull(body, hdr[:]); err != nil {
		return nil, &codedError{code: codeBadRequest, msg: "patch: truncated header: " + err.Error()}
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxPatchJSON {
		return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("patch: description of %d bytes is too large", n)}
	}
	pj := make([]byte, n)
	if _, err := io.ReadFull(body, pj); err != nil {
		return nil, &codedError{code: codeBadRequest, msg: "patch: truncated description: " + err.Error()}
	}
	var p filesync.Patch
	if err := json.Unmarshal(pj, &p); err != nil {
		return nil, &codedError{code: codeBadRequest, msg: "patch: malformed description: " + err.Error()}
	}
	if err := local.Patch(s.ctx, req.Path, p, body); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// streamReader reads a stream's DATA as a byte stream. On the agent it ends
// at the client's EOF frame; on the client at the agent's RESULT.
type streamReader struct {
	ctx   context.Context
	s     *stream
	op    string
	cur   []byte
	chunk int
	end   error
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.chunk > 0 {
			r.s.consumed(r.chunk)
			r.chunk = 0
		}
		if r.end != nil {
			return 0, r.end
		}
		e, err := r.s.next(r.ctx)
		if err != nil {
			return 0, err
		}
		switch e.typ {
		case frameData:
			r.cur, r.chunk = e.data, len(e.data)
		case frameEOF:
			r.end = io.EOF
		case frameResult:
			r.end = io.EOF
			if err := decodeResult(r.op, e.data, nil); err != nil {
				r.end = err
			}
		case frameReset:
			r.end = &StreamError{Msg: string(e.data)}
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// ---- client side ----

// RemoteFS is the node's file system served by the agent. It implements
// filesync.FS, filesync.Hasher and filesync.Patcher, so filesync.Sync to or
// from it moves only changed blocks. Relative paths are relative to the
// agent's working directory (the login home). Safe for concurrent use.
type RemoteFS struct {
	c *Client
}

var (
	_ filesync.FS      = (*RemoteFS)(nil)
	_ filesync.Hasher  = (*RemoteFS)(nil)
	_ filesync.Patcher = (*RemoteFS)(nil)
	_ filesync.Batcher = (*RemoteFS)(nil)
)

// FS returns the node's file system.
func (c *Client) FS() *RemoteFS { return &RemoteFS{c: c} }

// Stat implements filesync.FS.
func (r *RemoteFS) Stat(ctx context.Context, p string) (filesync.Entry, error) {
	var e filesync.Entry
	err := r.c.call(ctx, fsReq{Op: "fs.stat", Path: p}, &e)
	return e, err
}

// Walk implements filesync.FS; the agent walks and filters, one round trip.
func (r *RemoteFS) Walk(ctx context.Context, root string, opts filesync.WalkOptions) ([]filesync.Entry, error) {
	b, err := r.c.callData(ctx, fsReq{Op: "fs.walk", Path: root, Walk: &opts}, nil, maxListing)
	if err != nil {
		return nil, err
	}
	var ents []filesync.Entry
	if err := json.Unmarshal(b, &ents); err != nil {
		return nil, fmt.Errorf("agent: fs.walk: malformed listing: %w", err)
	}
	return ents, nil
}

// awaitOpened waits for the agent's REPLY acknowledging a stream that
// returns data or takes a body.
func (r *RemoteFS) awaitOpened(ctx context.Context, s *stream, op string) error {
	for {
		e, err := s.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return r.c.abandon(s, op, ctx)
			}
			return fmt.Errorf("agent: %s: %w", op, err)
		}
		switch e.typ {
		case frameReply:
			return nil
		case frameResult:
			if err := decodeResult(op, e.data, nil); err != nil {
				return err
			}
			return fmt.Errorf("agent: %s: finished before it started", op)
		case frameReset:
			return fmt.Errorf("agent: %s: %w", op, &StreamError{Msg: string(e.data)})
		case frameData:
			s.consumed(len(e.data))
		}
	}
}

// Open implements filesync.FS. The file is streamed; the reader also
// implements io.ReaderAt (one round trip per call), so delta transfers from
// the node read only the blocks they need.
func (r *RemoteFS) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	s, err := r.c.open(fsReq{Op: "fs.open", Path: p})
	if err != nil {
		return nil, err
	}
	if err := r.awaitOpened(ctx, s, "fs.open"); err != nil {
		r.c.conn.forget(s)
		return nil, err
	}
	return &remoteFile{fs: r, path: p, ctx: ctx, sr: &streamReader{ctx: ctx, s: s, op: "fs.open"}}, nil
}

type remoteFile struct {
	fs   *RemoteFS
	path string
	ctx  context.Context
	sr   *streamReader
}

func (f *remoteFile) Read(p []byte) (int, error) { return f.sr.Read(p) }

func (f *remoteFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		want := min(len(p)-n, maxReadAt)
		b, err := f.fs.c.callData(f.ctx, fsReq{Op: "fs.readat", Path: f.path, Offset: off + int64(n), Length: want}, nil, want)
		n += copy(p[n:], b)
		if err != nil {
			return n, err
		}
		if len(b) < want {
			return n, io.EOF
		}
	}
	return n, nil
}

// ReaderAt reads path at offsets, one fs.readat round trip per call, without
// opening a stream: Open starts streaming the file at once (a window's worth
// crosses the wire whether read or not), which a reader that only wants a few
// blocks (a delta transfer, a remote handle serving chunk reads) should not
// pay for. Calls use ctx; a missing file fails on the first read.
func (r *RemoteFS) ReaderAt(ctx context.Context, p string) io.ReaderAt {
	return &remoteFile{fs: r, path: p, ctx: ctx}
}

func (f *remoteFile) Close() error {
	if f.sr.end == nil {
		f.sr.s.reset("reader closed")
	}
	f.fs.c.conn.forget(f.sr.s)
	return nil
}

// Create implements filesync.FS: content goes to a temporary file on the
// node that Commit renames into place.
func (r *RemoteFS) Create(ctx context.Context, p string, perm fs.FileMode) (filesync.FileWriter, error) {
	s, err := r.c.open(fsReq{Op: "fs.create", Path: p, Perm: perm})
	if err != nil {
		return nil, err
	}
	if err := r.awaitOpened(ctx, s, "fs.create"); err != nil {
		r.c.conn.forget(s)
		return nil, err
	}
	return &remoteWriter{c: r.c, s: s, ctx: ctx}, nil
}

type remoteWriter struct {
	c    *Client
	s    *stream
	ctx  context.Context
	done bool
}

func (w *remoteWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("agent: write after commit or abort")
	}
	if err := w.s.sendData(w.ctx, chanIn, p); err != nil {
		return 0, w.failed("fs.create", err)
	}
	return len(p), nil
}

// failed explains a failed send: the agent's RESULT says why, if it sent one.
func (w *remoteWriter) failed(op string, err error) error {
	if errors.Is(err, errPeerDone) {
		if rerr := awaitResult(context.WithoutCancel(w.ctx), w.s, op, time.Second); rerr != nil {
			return rerr
		}
	}
	return fmt.Errorf("agent: %s: %w", op, err)
}

func (w *remoteWriter) finish(commit bool) error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.c.conn.forget(w.s)
	b, _ := json.Marshal(eofBody{Commit: commit})
	if err := w.c.conn.sendCtrl(frameEOF, w.s.id, b); err != nil {
		return fmt.Errorf("agent: fs.create: %w", err)
	}
	if !commit {
		// Abort often follows a cancelled ctx; the temp file should still go.
		return awaitResult(context.WithoutCancel(w.ctx), w.s, "fs.create", 5*time.Second)
	}
	return awaitResult(w.ctx, w.s, "fs.create", 0)
}

func (w *remoteWriter) Commit() error {
	if w.done {
		return errors.New("agent: commit after commit or abort")
	}
	return w.finish(true)
}

func (w *remoteWriter) Abort() error { return w.finish(false) }

// awaitResult waits for the stream's RESULT (bounded by d when positive)
// and returns its error.
func awaitResult(ctx context.Context, s *stream, op string, d time.Duration) error {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return awaitResultValue(ctx, s, op, nil)
}

// awaitResultValue waits for the stream's RESULT, decoding its value into
// out (when not nil), and returns its error.
func awaitResultValue(ctx context.Context, s *stream, op string, out any) error {
	for {
		e, err := s.next(ctx)
		if err != nil {
			return fmt.Errorf("agent: %s: %w", op, err)
		}
		switch e.typ {
		case frameData:
			s.consumed(len(e.data))
		case frameResult:
			return decodeResult(op, e.data, out)
		case frameReset:
			return fmt.Errorf("agent: %s: %w", op, &StreamError{Msg: string(e.data)})
		}
	}
}

// MkdirAll implements filesync.FS.
func (r *RemoteFS) MkdirAll(ctx context.Context, p string, perm fs.FileMode) error {
	return r.c.call(ctx, fsReq{Op: "fs.mkdirall", Path: p, Perm: perm}, nil)
}

// Remove implements filesync.FS.
func (r *RemoteFS) Remove(ctx context.Context, p string) error {
	return r.c.call(ctx, fsReq{Op: "fs.remove", Path: p}, nil)
}

// Symlink implements filesync.FS.
func (r *RemoteFS) Symlink(ctx context.Context, target, p string) error {
	return r.c.call(ctx, fsReq{Op: "fs.symlink", Path: p, Target: target}, nil)
}

// Chmod implements filesync.FS.
func (r *RemoteFS) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	return r.c.call(ctx, fsReq{Op: "fs.chmod", Path: p, Perm: perm}, nil)
}

// Chtimes implements filesync.FS.
func (r *RemoteFS) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	return r.c.call(ctx, fsReq{Op: "fs.chtimes", Path: p, MTime: mtime}, nil)
}

// HashBlocks implements filesync.Hasher: the node hashes its own file.
func (r *RemoteFS) HashBlocks(ctx context.Context, p string, blockSize int) ([]filesync.BlockSum, error) {
	b, err := r.c.callData(ctx, fsReq{Op: "fs.hashblocks", Path: p, BlockSize: blockSize}, nil, maxListing)
	if err != nil {
		return nil, err
	}
	var sums []filesync.BlockSum
	if err := json.Unmarshal(b, &sums); err != nil {
		return nil, fmt.Errorf("agent: fs.hashblocks: malformed sums: %w", err)
	}
	return sums, nil
}

// Patch implements filesync.Patcher: only the literal blocks cross the wire.
func (r *RemoteFS) Patch(ctx context.Context, p string, pt filesync.Patch, data io.Reader) error {
	pj, err := json.Marshal(pt)
	if err != nil {
		return fmt.Errorf("agent: fs.patch: %w", err)
	}
	s, err := r.c.open(fsReq{Op: "fs.patch", Path: p})
	if err != nil {
		return err
	}
	defer r.c.conn.forget(s)
	w := &remoteWriter{c: r.c, s: s, ctx: ctx}
	send := func(b []byte) error {
		if err := s.sendData(ctx, chanIn, b); err != nil {
			if ctx.Err() != nil {
				return r.c.abandon(s, "fs.patch", ctx)
			}
			return w.failed("fs.patch", err)
		}
		return nil
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(pj)))
	if err := send(append(hdr[:], pj...)); err != nil {
		return err
	}
	buf := make([]byte, maxChunk)
	for {
		n, rerr := data.Read(buf)
		if n > 0 {
			if err := send(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			s.reset("client read failed")
			return fmt.Errorf("agent: fs.patch: read data: %w", rerr)
		}
	}
	if err := r.c.conn.sendCtrl(frameEOF, s.id, nil); err != nil {
		return fmt.Errorf("agent: fs.patch: %w", err)
	}
	return awaitResult(ctx, s, "fs.patch", 0)
}
