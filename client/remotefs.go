package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/filesync"
)

// remoteFS is a filesync.FS whose operations are requests to the gateway,
// which performs them on one node over SFTP. Walks run on the gateway in one
// request; file content moves in api.FileChunk pieces, several in flight.
type remoteFS struct {
	c    *Client
	name string
	node string
}

var (
	_ filesync.FS            = (*remoteFS)(nil)
	_ filesync.TimePrecision = (*remoteFS)(nil)
	_ filesync.Batcher       = (*remoteFS)(nil)
)

// MtimePrecision implements filesync.TimePrecision: SFTP keeps whole seconds.
func (*remoteFS) MtimePrecision() time.Duration { return time.Second }

func (r *remoteFS) req(p string) api.FSRequest {
	return api.FSRequest{Name: r.name, Node: r.node, Path: p}
}

func (r *remoteFS) call(ctx context.Context, op string, req, resp any) error {
	return fsError(r.c.Call(ctx, api.FSSubject(op), req, resp))
}

// fsError maps the gateway's path errors back to io/fs sentinels, which the
// sync engine branches on.
func fsError(err error) error {
	var e *rh.Error
	if err == nil || !errors.As(err, &e) || e.Field != "path" {
		return err
	}
	switch e.Code {
	case rh.ENOTFOUND:
		return &nodePathError{e, fs.ErrNotExist}
	case rh.ECONFLICT:
		return &nodePathError{e, fs.ErrExist}
	case rh.EINVALID:
		return &nodePathError{e, fs.ErrPermission}
	}
	return err
}

// nodePathError is a node's answer about a path: it reads as the node's
// own message ("stat /x: no such file or directory") and matches both the
// rh error and the io/fs sentinel.
type nodePathError struct {
	err  *rh.Error
	kind error
}

func (e *nodePathError) Error() string {
	if e.err.Err != nil {
		return e.err.Message + ": " + e.err.Err.Error()
	}
	return e.err.Message
}

func (e *nodePathError) Unwrap() []error { return []error{e.err, e.kind} }

func fromWire(e api.FSEntry) filesync.Entry {
	return filesync.Entry{Path: e.Path, Mode: fs.FileMode(e.Mode), Size: e.Size, ModTime: e.ModTime, LinkTarget: e.Link}
}

func (r *remoteFS) Stat(ctx context.Context, p string) (filesync.Entry, error) {
	var rep api.FSEntryReply
	if err := r.call(ctx, api.FSStat, r.req(p), &rep); err != nil {
		return filesync.Entry{}, err
	}
	e := fromWire(rep.Entry)
	e.Path = p
	return e, nil
}

// Walk implements filesync.FS: the gateway walks the node's tree and the
// entries come back in pages.
func (r *remoteFS) Walk(ctx context.Context, root string, opts filesync.WalkOptions) ([]filesync.Entry, error) {
	req := r.req(root)
	req.Rules, req.Side = opts.Rules, int(opts.Side)
	var out []filesync.Entry
	err := streamPages(ctx, r.c, api.FSWalk, req, r.c.timeout, func(page api.FSWalkPage) error {
		for _, e := range page.Entries {
			out = append(out, fromWire(e))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// streamPages asks the streamed file endpoint op and hands each page of its
// answer, decoded into a P, to add, until a page comes without api.HdrMore
// (see api.FSWalkPage). wait bounds the silence before each page.
func streamPages[P any](ctx context.Context, c *Client, op string, req api.FSRequest, wait time.Duration, add func(P) error) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	// The pages come to our own inbox, the request's reply subject.
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(api.FSStreamSubject(op), inbox, body); err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &rh.Error{Code: rh.EUNAVAILABLE, Message: op + " " + req.Path + ": the gateway did not answer in time", Err: err}
		}
		if err := msgError(m); err != nil {
			return err
		}
		var page P
		if err := json.Unmarshal(m.Data, &page); err != nil {
			return fmt.Errorf("client: %s %s: decode page: %w", op, req.Path, err)
		}
		if err := add(page); err != nil {
			return err
		}
		if m.Header.Get(api.HdrMore) == "" {
			return nil
		}
	}
}

func (r *remoteFS) MkdirAll(ctx context.Context, p string, perm fs.FileMode) error {
	req := r.req(p)
	req.Perm = uint32(perm)
	return r.call(ctx, api.FSMkdir, req, nil)
}

func (r *remoteFS) Remove(ctx context.Context, p string) error {
	return r.call(ctx, api.FSRemove, r.req(p), nil)
}

func (r *remoteFS) Symlink(ctx context.Context, target, p string) error {
	req := r.req(p)
	req.Target = target
	return r.call(ctx, api.FSSymlink, req, nil)
}

func (r *remoteFS) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	req := r.req(p)
	req.Perm = uint32(perm)
	return r.call(ctx, api.FSChmod, req, nil)
}

func (r *remoteFS) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	req := r.req(p)
	req.MTime = mtime
	return r.call(ctx, api.FSChtimes, req, nil)
}

// BatchMaxBytes implements filesync.Batcher: a batch is one NATS message,
// its content base64-encoded in JSON (4/3 of its size) plus the file list.
func (r *remoteFS) BatchMaxBytes() int {
	room := int(r.c.nc.MaxPayload()) - 256<<10
	return max(filesync.SmallFileMax, min(filesync.BatchMaxBytes, room*3/4))
}

// WriteFiles implements filesync.Batcher: one request writes the batch (see
// api.FSWriteFiles); the gateway checks every entry on the node's side. A
// batch whose message would exceed the server's payload limit (long paths)
// goes in two halves, one after the other.
func (r *remoteFS) WriteFiles(ctx context.Context, root string, files []filesync.SmallFile) (int, error) {
	req := api.FSWriteFilesRequest{Name: r.name, Node: r.node, Path: root, Files: make([]api.FSFile, len(files))}
	for i, f := range files {
		req.Files[i] = api.FSFile{Path: f.Path, Perm: uint32(f.Perm), MTime: f.ModTime, Data: f.Data}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("client: writefiles: %w", err)
	}
	if h := len(files) / 2; len(body) > int(r.c.nc.MaxPayload())-4<<10 && h > 0 {
		n, err := r.WriteFiles(ctx, root, files[:h])
		if err != nil {
			return n, err
		}
		m, err := r.WriteFiles(ctx, root, files[h:])
		var be *filesync.BatchError
		if errors.As(err, &be) {
			be.Index += h
		}
		return n + m, err
	}
	var rep api.FSWriteFilesReply
	if err := r.call(ctx, api.FSWriteFiles, json.RawMessage(body), &rep); err != nil {
		return 0, err
	}
	if f := rep.Failed; f != nil {
		return rep.Written, &filesync.BatchError{Index: f.Index, Path: f.Path,
			Err: fsError(&rh.Error{Code: f.Code, Field: "path", Message: f.Message})}
	}
	return rep.Written, nil
}

// agentRemoteFS is remoteFS on a node that runs the agent: it also hashes
// files on the node (hashblocks) and rebuilds them there from changed blocks
// (patch), so filesync.Sync moves only what changed inside large files, in
// both directions; and it keeps modification times to the nanosecond.
type agentRemoteFS struct {
	remoteFS
}

var (
	_ filesync.Hasher  = (*agentRemoteFS)(nil)
	_ filesync.Patcher = (*agentRemoteFS)(nil)
)

// MtimePrecision implements filesync.TimePrecision: the agent sets exact times.
func (*agentRemoteFS) MtimePrecision() time.Duration { return time.Nanosecond }

// HashBlocks implements filesync.Hasher: the node hashes its own file and
// the sums come back in pages.
func (r *agentRemoteFS) HashBlocks(ctx context.Context, p string, blockSize int) ([]filesync.BlockSum, error) {
	req := r.req(p)
	req.BlockSize = blockSize
	var out []filesync.BlockSum
	// Hashing a large file takes a while before the first page.
	err := streamPages(ctx, r.c, api.FSHashBlocks, req, max(r.c.timeout, 5*time.Minute), func(page api.FSSumsPage) error {
		for _, b := range page.Sums {
			var s filesync.Sum
			if err := s.UnmarshalText([]byte(b.Sum)); err != nil {
				return fmt.Errorf("client: hashblocks %s: %w", p, err)
			}
			out = append(out, filesync.BlockSum{Size: b.Size, Sum: s})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Patch implements filesync.Patcher: the patch and the literal blocks go to
// a patch handle as one byte stream (see api.FSPatch); Commit applies it.
func (r *agentRemoteFS) Patch(ctx context.Context, p string, pt filesync.Patch, data io.Reader) error {
	hdr, err := json.Marshal(pt)
	if err != nil {
		return fmt.Errorf("client: patch: %w", err)
	}
	h, err := r.openHandle(ctx, api.FSPatch, r.req(p))
	if err != nil {
		return err
	}
	w := &remoteWriter{h: h, buf: make([]byte, 0, api.FileChunk)}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		_ = w.Abort()
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		_ = w.Abort()
		return err
	}
	if _, err := io.Copy(w, data); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Commit()
}
