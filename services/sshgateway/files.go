package sshgateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/filesync"
)

// The file endpoints serve filesync.FS operations on one node's SFTP
// (filesync.SFTPFS over the pooled connection), so that the client runs the
// sync engine between its local files and this remote FS. Whole-tree walks
// happen here, next to the node, and come back in pages; file content moves
// in api.FileChunk pieces through handles (see handleTable), several in flight.

// nodeFS resolves the one node a file request is about: its agent's file
// system when the node runs the agent (walks, hashes and patches happen on
// the node), SFTP otherwise.
//
// Every file operation needs write access: reading a node's files runs the
// gateway's SFTP or agent on the node as the cluster's user.
func (s *Service) nodeFS(ctx context.Context, name, node string) (filesync.FS, error) {
	f, _, err := s.openFS(ctx, name, node)
	return f, err
}

// openFS is nodeFS that also says the cluster's kind (for the transfer
// metrics of open files).
func (s *Service) openFS(ctx context.Context, name, node string) (filesync.FS, rh.Kind, error) {
	ts, err := s.clusterNodes(ctx, name, rh.AccessWrite)
	if err != nil {
		return nil, "", err
	}
	sel, err := selectNodes(node, ts)
	if err != nil {
		return nil, "", err
	}
	if len(sel) != 1 {
		return nil, "", rh.Invalid("node", "file operations take one node; the client fans out to all")
	}
	kind := sel[0].Kind
	c, err := s.client(ctx, name, sel[0].Target)
	if err != nil {
		return nil, kind, &rh.Error{Code: rh.EUNAVAILABLE, Message: reason(name, err)}
	}
	if ac, _ := s.agentFor(ctx, name, sel[0]); ac != nil {
		return ac.FS(), kind, nil
	}
	sc, err := s.sftpClient(c)
	if err != nil {
		return nil, kind, &rh.Error{Code: rh.EUNAVAILABLE, Message: err.Error()}
	}
	return filesync.NewSFTPFS(sc), kind, nil
}

// agentFS is nodeFS for the operations only an agent serves.
func (s *Service) agentFS(ctx context.Context, name, node string) (*agent.RemoteFS, error) {
	f, err := s.nodeFS(ctx, name, node)
	if err != nil {
		return nil, err
	}
	af, ok := f.(*agent.RemoteFS)
	if !ok {
		return nil, rh.Conflict("node %s of %s does not run the agent (hashblocks and patch need it); use whole-file transfers", node, name)
	}
	return af, nil
}

// fsErr turns a file system error into an rh error the client maps back:
// errors about the path carry Field "path" (not_found ↔ fs.ErrNotExist,
// conflict ↔ fs.ErrExist, invalid ↔ fs.ErrPermission). The node's other
// answers a user can act on keep their words: a path through a file or too
// long is invalid, a full or read-only file system a conflict with the
// node's state. Only what is left is internal (its words only in the log).
func fsErr(op, p string, err error) error {
	var re *rh.Error
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return &rh.Error{Code: rh.ENOTFOUND, Field: "path", Message: fmt.Sprintf("%s %s: no such file or directory", op, p)}
	case errors.Is(err, fs.ErrExist):
		return &rh.Error{Code: rh.ECONFLICT, Field: "path", Message: fmt.Sprintf("%s %s: file exists", op, p)}
	case errors.Is(err, fs.ErrPermission):
		return &rh.Error{Code: rh.EINVALID, Field: "path", Message: fmt.Sprintf("%s %s: permission denied", op, p)}
	}
	for _, errno := range agent.FileErrnos() {
		if !errors.Is(err, errno) {
			continue
		}
		code := rh.EINVALID // the path: through a file, at a directory, too long, looping
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS:
			code = rh.ECONFLICT // the node's state
		}
		return &rh.Error{Code: code, Message: fmt.Sprintf("%s %s: %s", op, p, errno.Error())}
	}
	return &rh.Error{Code: rh.EINTERNAL, Message: fmt.Sprintf("%s %s: %v", op, p, err)}
}

func toWire(e filesync.Entry) api.FSEntry {
	return api.FSEntry{Path: e.Path, Mode: uint32(e.Mode), Size: e.Size, ModTime: e.ModTime, Link: e.LinkTarget}
}

func (s *Service) fsStat(ctx context.Context, req api.FSRequest) (*api.FSEntryReply, error) {
	f, err := s.nodeFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	e, err := f.Stat(ctx, req.Path)
	if err != nil {
		return nil, fsErr("stat", req.Path, err)
	}
	return &api.FSEntryReply{Entry: toWire(e)}, nil
}

// walkPage and walkPageBytes bound a walk page well below NATS's 1 MiB
// message limit.
const (
	walkPage      = 1000
	walkPageBytes = 256 << 10
)

// fsWalk answers a walk of the node's tree in pages of entries.
func (s *Service) fsWalk(r micro.Request) {
	streamList(s, r, "walk", 5*time.Minute, pager[filesync.Entry]{
		perPage: walkPage, maxBytes: walkPageBytes,
		size: func(e filesync.Entry) int { return len(e.Path) + len(e.LinkTarget) + 96 },
		page: func(es []filesync.Entry) any {
			page := api.FSWalkPage{Entries: make([]api.FSEntry, 0, len(es))}
			for _, e := range es {
				page.Entries = append(page.Entries, toWire(e))
			}
			return page
		},
	}, func(ctx context.Context, req api.FSRequest) ([]filesync.Entry, error) {
		f, err := s.nodeFS(ctx, req.Name, req.Node)
		if err != nil {
			return nil, err
		}
		ents, err := f.Walk(ctx, req.Path, filesync.WalkOptions{Rules: req.Rules, Side: filesync.Side(req.Side)})
		if err != nil {
			return nil, fsErr("walk", req.Path, err)
		}
		return ents, nil
	})
}

// pager cuts a list into the pages of a streamed answer.
type pager[T any] struct {
	// perPage and, when size is set, maxBytes bound a page: size estimates
	// one item's encoded length (paths may be long, and NATS refuses
	// messages over its limit, 1 MiB by default).
	perPage, maxBytes int
	size              func(T) int
	// page makes the wire page (api.FSWalkPage, api.FSSumsPage) of items.
	page func(items []T) any
}

// streamList serves a streamed file request whose answer is a list, made by
// list after the request is authenticated and decoded strictly. The list goes
// back in pages, all but the last marked api.HdrMore, then the empty message
// that ends the stream: a list of any size fits.
func streamList[T any](s *Service, r micro.Request, op string, timeout time.Duration, pg pager[T], list func(context.Context, api.FSRequest) ([]T, error)) {
	ctx, cancel, req, err := request[api.FSRequest](s, r, timeout)
	if err != nil {
		s.respondStreamError(r, err)
		return
	}
	defer cancel()
	items, err := list(ctx, req)
	if err != nil {
		s.respondStreamError(r, err)
		return
	}
	for start := 0; ; {
		end, size := start, 0
		for end < len(items) && end-start < pg.perPage && (pg.size == nil || size < pg.maxBytes) {
			if pg.size != nil {
				size += pg.size(items[end])
			}
			end++
		}
		body, err := json.Marshal(pg.page(items[start:end]))
		if err != nil {
			s.respondStreamError(r, fmt.Errorf("%s: encode page: %w", op, err))
			return
		}
		m := nats.NewMsg(r.Reply())
		m.Data = body
		if end < len(items) {
			m.Header.Set(api.HdrMore, "1")
		}
		if err := s.nc.PublishMsg(m); err != nil {
			s.log.Warn(op+": publish page failed", "err", err)
			return
		}
		if end == len(items) {
			s.endStream(r.Reply())
			return
		}
		start = end
	}
}

func (s *Service) fsMkdir(ctx context.Context, req api.FSRequest) (*struct{}, error) {
	f, err := s.nodeFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	if err := f.MkdirAll(ctx, req.Path, fs.FileMode(req.Perm)); err != nil {
		return nil, fsErr("mkdir", req.Path, err)
	}
	return &struct{}{}, nil
}

func (s *Service) fsRemove(ctx context.Context, req api.FSRequest) (*struct{}, error) {
	f, err := s.nodeFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	if err := f.Remove(ctx, req.Path); err != nil {
		return nil, fsErr("remove", req.Path, err)
	}
	return &struct{}{}, nil
}

func (s *Service) fsSymlink(ctx context.Context, req api.FSRequest) (*struct{}, error) {
	f, err := s.nodeFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	if err := f.Symlink(ctx, req.Target, req.Path); err != nil {
		return nil, fsErr("symlink", req.Path, err)
	}
	return &struct{}{}, nil
}

func (s *Service) fsChmod(ctx context.Context, req api.FSRequest) (*struct{}, error) {
	f, err := s.nodeFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(ctx, req.Path, fs.FileMode(req.Perm)); err != nil {
		return nil, fsErr("chmod", req.Path, err)
	}
	return &struct{}{}, nil
}

func (s *Service) fsChtimes(ctx context.Context, req api.FSRequest) (*struct{}, error) {
	f, err := s.nodeFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	if err := f.Chtimes(ctx, req.Path, req.MTime); err != nil {
		return nil, fsErr("chtimes", req.Path, err)
	}
	return &struct{}{}, nil
}

// fsWriteFiles writes a batch of small files: through the agent in one
// round trip, or file by file over SFTP. Either way every entry is checked
// on the node's side of the gateway before anything is written.
func (s *Service) fsWriteFiles(ctx context.Context, req api.FSWriteFilesRequest) (*api.FSWriteFilesReply, error) {
	if len(req.Files) > filesync.BatchMaxFiles {
		return nil, rh.Invalid("files", "%d files exceed the %d a batch may hold", len(req.Files), filesync.BatchMaxFiles)
	}
	files := make([]filesync.SmallFile, len(req.Files))
	for i, f := range req.Files {
		if len(f.Data) > filesync.SmallFileMax {
			return nil, rh.Invalid("files", "%q holds %d bytes, more than the %d of a batched file", f.Path, len(f.Data), filesync.SmallFileMax)
		}
		files[i] = filesync.SmallFile{Path: f.Path, Perm: fs.FileMode(f.Perm), ModTime: f.MTime, Data: f.Data}
	}
	start := time.Now()
	f, kind, err := s.openFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	var n int
	if b, ok := f.(filesync.Batcher); ok {
		n, err = b.WriteFiles(ctx, req.Path, files)
	} else {
		n, err = filesync.WriteFilesFS(ctx, f, req.Path, files)
	}
	rep := &api.FSWriteFilesReply{Written: n}
	var be *filesync.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		e := batchEntryErr(be.Path, be.Err)
		rep.Failed = &api.FSFileError{Index: be.Index, Path: be.Path, Code: e.Code, Message: e.Message}
	default:
		return nil, fsErr("writefiles", req.Path, err)
	}
	// Each file written is one upload in the transfer timings, as through a
	// handle; its transfer took at most the batch's time.
	for _, f := range files[:n] {
		s.m.bytes.WithLabelValues("upload").Add(float64(len(f.Data)))
		s.m.commandTook(kind, opUpload, start)
	}
	return rep, nil
}

// batchEntryErr is fsErr for one entry of a batch; a refused path is invalid.
func batchEntryErr(p string, err error) *rh.Error {
	if errors.Is(err, filesync.ErrEscape) {
		return &rh.Error{Code: rh.EINVALID, Field: "path", Message: fmt.Sprintf("%s: %v", p, err)}
	}
	var e *rh.Error
	if errors.As(fsErr("write", p, err), &e) {
		if e.Code == rh.EINTERNAL {
			// A node's file error is the user's to read, not a gateway secret.
			e = &rh.Error{Code: rh.EINVALID, Field: "path", Message: fmt.Sprintf("write %s: %v", p, err)}
		}
		return e
	}
	return &rh.Error{Code: rh.EINVALID, Field: "path", Message: err.Error()}
}

func (s *Service) fsOpen(ctx context.Context, req api.FSRequest) (*api.FSHandleReply, error) {
	f, kind, err := s.openFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	e, err := f.Stat(ctx, req.Path)
	if err != nil {
		return nil, fsErr("open", req.Path, err)
	}
	subject, err := s.handleSubject(ctx)
	if err != nil {
		return nil, err
	}
	h := &handle{id: uuid.NewString(), path: req.Path, owner: auth.CallerFrom(ctx).User, kind: kind, opened: time.Now()}
	if af, ok := f.(*agent.RemoteFS); ok {
		// Chunk reads go straight to the node at their offsets; the handle
		// outlives this request, so its reads use the service's context.
		if !e.IsRegular() {
			return nil, fsErr("open", req.Path, fmt.Errorf("not a regular file"))
		}
		h.reader, h.readerAt = io.NopCloser(nil), af.ReaderAt(s.ctx, req.Path)
	} else {
		rc, err := f.Open(ctx, req.Path)
		if err != nil {
			return nil, fsErr("open", req.Path, err)
		}
		ra, ok := rc.(io.ReaderAt)
		if !ok {
			rc.Close()
			return nil, fmt.Errorf("sshgateway: open %s: reader has no ReadAt", req.Path)
		}
		h.reader, h.readerAt = rc, ra
	}
	if err := s.handles.add(h); err != nil {
		h.release()
		return nil, err
	}
	s.m.handles.Inc()
	return &api.FSHandleReply{Handle: h.id, HandleSubject: subject, Size: e.Size}, nil
}

func (s *Service) fsCreate(ctx context.Context, req api.FSRequest) (*api.FSHandleReply, error) {
	f, kind, err := s.openFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	// The writer outlives this request: an agent's writer keeps the context
	// it was created with for every write.
	if err := s.handles.room(auth.CallerFrom(ctx).User); err != nil {
		return nil, err
	}
	w, err := f.Create(s.ctx, req.Path, fs.FileMode(req.Perm))
	if err != nil {
		return nil, fsErr("create", req.Path, err)
	}
	return s.writeHandle(ctx, w, req.Path, kind)
}

func (s *Service) writeHandle(ctx context.Context, w filesync.FileWriter, p string, kind rh.Kind) (*api.FSHandleReply, error) {
	subject, err := s.handleSubject(ctx)
	if err != nil {
		_ = w.Abort()
		return nil, err
	}
	h := &handle{id: uuid.NewString(), writer: w, path: p, owner: auth.CallerFrom(ctx).User, queue: make(chan *nats.Msg, 64),
		kind: kind, opened: time.Now()}
	if err := s.handles.add(h); err != nil {
		_ = w.Abort()
		return nil, err
	}
	s.m.handles.Inc()
	s.wg.Go(func() { s.serveWriter(h) })
	return &api.FSHandleReply{Handle: h.id, HandleSubject: subject}, nil
}

// sumsPage bounds a hashblocks page well below NATS's 1 MiB message limit.
const sumsPage = 4000

// fsHashBlocks answers the block sums of a file, hashed by the node's agent,
// in pages (a file of many blocks has more sums than one message holds).
func (s *Service) fsHashBlocks(r micro.Request) {
	streamList(s, r, "hashblocks", 10*time.Minute, pager[filesync.BlockSum]{
		perPage: sumsPage,
		page: func(bs []filesync.BlockSum) any {
			page := api.FSSumsPage{Sums: make([]api.FSBlockSum, 0, len(bs))}
			for _, b := range bs {
				page.Sums = append(page.Sums, api.FSBlockSum{Size: b.Size, Sum: b.Sum.String()})
			}
			return page
		},
	}, func(ctx context.Context, req api.FSRequest) ([]filesync.BlockSum, error) {
		if req.BlockSize <= 0 || req.BlockSize > 64<<20 {
			return nil, rh.Invalid("block_size", "%d is outside 1-%d", req.BlockSize, 64<<20)
		}
		af, err := s.agentFS(ctx, req.Name, req.Node)
		if err != nil {
			return nil, err
		}
		sums, err := af.HashBlocks(ctx, req.Path, req.BlockSize)
		if err != nil {
			return nil, fsErr("hash", req.Path, err)
		}
		return sums, nil
	})
}

// fsPatch opens a write handle whose byte stream (see api.FSPatch) the
// node's agent applies: only the literal blocks cross NATS and SSH.
func (s *Service) fsPatch(ctx context.Context, req api.FSRequest) (*api.FSHandleReply, error) {
	f, kind, err := s.openFS(ctx, req.Name, req.Node)
	if err != nil {
		return nil, err
	}
	af, ok := f.(*agent.RemoteFS)
	if !ok {
		return nil, rh.Conflict("node %s of %s does not run the agent (patch needs it); use whole-file transfers", req.Node, req.Name)
	}
	if err := s.handles.room(auth.CallerFrom(ctx).User); err != nil {
		return nil, err
	}
	return s.writeHandle(ctx, newPatchWriter(s.ctx, af, req.Path), req.Path, kind)
}

// patchWriter is a FileWriter feeding RemoteFS.Patch: the first bytes are
// the length-prefixed patch, the rest the literal data, streamed through a
// pipe while Patch runs.
type patchWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // Patch's result, once done is closed
	end  bool
}

var errPatchAborted = errors.New("patch aborted")

func newPatchWriter(ctx context.Context, af *agent.RemoteFS, p string) *patchWriter {
	pr, pw := io.Pipe()
	w := &patchWriter{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = func() error {
			var n [4]byte
			if _, err := io.ReadFull(pr, n[:]); err != nil {
				return fmt.Errorf("read patch header: %w", err)
			}
			size := binary.BigEndian.Uint32(n[:])
			if size > 256<<20 {
				return rh.Invalid("patch", "header of %d bytes is too large", size)
			}
			hdr := make([]byte, size)
			if _, err := io.ReadFull(pr, hdr); err != nil {
				return fmt.Errorf("read patch header: %w", err)
			}
			var pt filesync.Patch
			if err := json.Unmarshal(hdr, &pt); err != nil {
				return rh.Invalid("patch", "not a valid patch: %v", err)
			}
			return af.Patch(ctx, p, pt, pr)
		}()
		// Unblock a writer still sending after a failure.
		pr.CloseWithError(errPatchAborted)
	}()
	return w
}

func (w *patchWriter) Write(b []byte) (int, error) {
	n, err := w.pw.Write(b)
	if err != nil {
		<-w.done
		if w.err != nil {
			return n, w.err
		}
	}
	return n, err
}

func (w *patchWriter) Commit() error {
	if w.end {
		return errors.New("commit after commit or abort")
	}
	w.end = true
	_ = w.pw.Close()
	<-w.done
	return w.err
}

func (w *patchWriter) Abort() error {
	if w.end {
		return nil
	}
	w.end = true
	w.pw.CloseWithError(errPatchAborted)
	<-w.done
	return nil
}

// handle is an open remote file. Readers serve reads concurrently (ReadAt);
// writers take their messages in order from queue: NATS delivers one
// client's publishes in order, and the per-handle goroutine keeps it.
type handle struct {
	id   string
	path string
	// owner is the user who opened it: only they may use it.
	owner string
	// kind and opened time the transfer (rh_ssh_command_duration_seconds).
	kind     rh.Kind
	opened   time.Time
	reader   io.Closer
	readerAt io.ReaderAt
	writer   filesync.FileWriter
	queue    chan *nats.Msg
	off      int64 // next write offset
	werr     error // first write failure: later writes and the commit fail

	mu       sync.Mutex
	lastUsed time.Time
	closed   bool
}

func (h *handle) touch() {
	h.mu.Lock()
	h.lastUsed = time.Now()
	h.mu.Unlock()
}

type handleTable struct {
	mu sync.Mutex
	m  map[string]*handle
	// max caps the handles one user holds: a client that opens and never
	// closes would otherwise pin the gateway's memory and SFTP channels.
	max int
}

func newHandleTable(maxPerUser int) *handleTable {
	return &handleTable{m: map[string]*handle{}, max: maxPerUser}
}

func (t *handleTable) openBy(owner string) int {
	n := 0
	for _, h := range t.m {
		if h.owner == owner {
			n++
		}
	}
	return n
}

func (t *handleTable) full(owner string) error {
	return rh.Conflict("user %q has %d remote files open, the most the gateway allows one user (MaxOpenFiles); "+
		"close some, or wait for idle ones to expire", owner, t.max)
}

// room says whether owner may open one more file (before opening it).
func (t *handleTable) room(owner string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.openBy(owner) >= t.max {
		return t.full(owner)
	}
	return nil
}

func (t *handleTable) add(h *handle) error {
	h.lastUsed = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.openBy(h.owner) >= t.max {
		return t.full(h.owner)
	}
	t.m[h.id] = h
	return nil
}

func (t *handleTable) get(id string) *handle {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

// take removes and returns the handle: exactly one closer wins.
func (t *handleTable) take(id string) *handle {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.m[id]
	delete(t.m, id)
	return h
}

func (t *handleTable) closeAll() {
	t.mu.Lock()
	hs := t.m
	t.m = map[string]*handle{}
	t.mu.Unlock()
	for _, h := range hs {
		h.release()
	}
}

// release closes a reader or aborts an unfinished writer.
func (h *handle) release() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	if h.reader != nil {
		_ = h.reader.Close()
	}
	if h.writer != nil {
		_ = h.writer.Abort()
		close(h.queue)
	}
}

// sweepHandles closes handles a vanished client left open.
func (s *Service) sweepHandles(ctx context.Context) {
	t := time.NewTicker(max(s.cfg.HandleIdle/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.handles.mu.Lock()
		var idle []*handle
		for id, h := range s.handles.m {
			h.mu.Lock()
			if time.Since(h.lastUsed) > s.cfg.HandleIdle {
				idle = append(idle, h)
				delete(s.handles.m, id)
			}
			h.mu.Unlock()
		}
		s.handles.mu.Unlock()
		for _, h := range idle {
			s.log.Info("closing idle remote file", "path", h.path)
			h.release()
			s.m.handles.Dec()
		}
	}
}

// onHandleMsg serves <handleSubject>.<op> messages.
func (s *Service) onHandleMsg(m *nats.Msg) {
	op := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	caller, err := s.cfg.Auth.Caller(m.Header)
	if err != nil {
		respondMsgErr(m, err)
		return
	}
	id := m.Header.Get(api.HdrHandle)
	h := s.handles.get(id)
	if h != nil && h.owner != caller.User {
		// Handle ids are random, but one that leaked is still not a key.
		respondMsgErr(m, rh.Forbidden("file handle %q belongs to another user", id))
		return
	}
	if h == nil {
		if op == api.FSClose || op == api.FSAbort {
			_ = m.Respond(nil) // already gone: closing twice is fine
			return
		}
		respondMsgErr(m, rh.NotFound("file handle %q is not open here (expired or the gateway restarted)", id))
		return
	}
	h.touch()
	switch {
	case h.writer != nil:
		if op != api.FSWrite && op != api.FSCommit && op != api.FSAbort {
			respondMsgErr(m, rh.Invalid("op", "%s on a file open for writing", op))
			return
		}
		h.mu.Lock()
		closed := h.closed
		if !closed {
			h.queue <- m
		}
		h.mu.Unlock()
		if closed {
			respondMsgErr(m, rh.NotFound("file handle %q is closed", id))
		}
	case op == api.FSRead:
		s.wg.Go(func() { s.serveRead(h, m) })
	case op == api.FSClose:
		if s.handles.take(id) != nil {
			h.release()
			s.m.handles.Dec()
			s.m.commandTook(h.kind, opDownload, h.opened)
		}
		_ = m.Respond(nil)
	default:
		respondMsgErr(m, rh.Invalid("op", "%s on a file open for reading", op))
	}
}

func (s *Service) serveRead(h *handle, m *nats.Msg) {
	off, err1 := strconv.ParseInt(m.Header.Get(api.HdrOffset), 10, 64)
	n, err2 := strconv.Atoi(m.Header.Get(api.HdrLength))
	if err1 != nil || err2 != nil || off < 0 || n <= 0 || n > api.FileChunk {
		respondMsgErr(m, rh.Invalid("offset", "bad offset or length"))
		return
	}
	buf := make([]byte, n)
	got, err := h.readerAt.ReadAt(buf, off)
	eof := false
	if errors.Is(err, io.EOF) {
		eof, err = true, nil
	}
	if err != nil {
		respondMsgErr(m, fsErr("read", h.path, err))
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(api.HdrOffset, strconv.FormatInt(off, 10))
	if eof {
		r.Header.Set(api.HdrEOF, "1")
	}
	r.Data = buf[:got]
	s.m.bytes.WithLabelValues("download").Add(float64(got))
	_ = s.nc.PublishMsg(r)
}

// serveWriter applies one writer handle's messages in order.
func (s *Service) serveWriter(h *handle) {
	for m := range h.queue {
		op := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		switch op {
		case api.FSWrite:
			off, err := strconv.ParseInt(m.Header.Get(api.HdrOffset), 10, 64)
			switch {
			case h.werr != nil:
			case err != nil || off != h.off:
				h.werr = rh.Invalid("offset", "write at %s, expected %d: chunks arrived out of order", m.Header.Get(api.HdrOffset), h.off)
			default:
				if _, err := h.writer.Write(m.Data); err != nil {
					h.werr = fsErr("write", h.path, err)
				}
				h.off += int64(len(m.Data))
				s.m.bytes.WithLabelValues("upload").Add(float64(len(m.Data)))
			}
			if h.werr != nil {
				respondMsgErr(m, h.werr)
				continue
			}
			r := nats.NewMsg(m.Reply)
			r.Header.Set(api.HdrOffset, strconv.FormatInt(off, 10))
			_ = s.nc.PublishMsg(r)
		case api.FSCommit, api.FSAbort:
			if s.handles.take(h.id) == nil {
				_ = m.Respond(nil)
				continue
			}
			s.m.handles.Dec()
			var err error
			if op == api.FSCommit && h.werr == nil {
				err = h.writer.Commit()
				if err != nil {
					err = fsErr("commit", h.path, err)
				}
			} else {
				err = h.werr
			}
			h.release() // aborts unless committed (Abort after Commit is a no-op)
			if op == api.FSCommit && err == nil {
				s.m.commandTook(h.kind, opUpload, h.opened)
			}
			if op == api.FSCommit && err != nil {
				respondMsgErr(m, err)
			} else {
				_ = m.Respond(nil)
			}
		}
	}
}

// respondMsgErr answers a raw request with an rh error, in the micro error
// form the client's Call understands.
func respondMsgErr(m *nats.Msg, err error) {
	if m.Reply == "" {
		return
	}
	var e *rh.Error
	if !errors.As(err, &e) {
		e = &rh.Error{Code: rh.EINTERNAL, Message: err.Error()}
	}
	body, _ := json.Marshal(e)
	r := nats.NewMsg(m.Reply)
	r.Header.Set(micro.ErrorCodeHeader, api.ErrorStatus(e.Code))
	r.Header.Set(micro.ErrorHeader, e.Error())
	r.Data = body
	_ = m.RespondMsg(r)
}
