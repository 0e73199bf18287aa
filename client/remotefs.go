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
)

// MtimePrecision implements filesync.TimePrecision: SFTP keeps whole seconds.
func (*remoteFS) MtimePrecision() time.Duration { return time.Second }

func (r *remoteFS) req(p string) api.FSRequest {
	return api.FSRequest{Name: r.name, Node: r.node, Path: p}
}

func (r *remoteFS) call(ctx context.Context, op string, req api.FSRequest, resp any) error {
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
		return fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
	case rh.ECONFLICT:
		return fmt.Errorf("%w (%w)", err, fs.ErrExist)
	case rh.EINVALID:
		return fmt.Errorf("%w (%w)", err, fs.ErrPermission)
	}
	return err
}

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

func (r *remoteFS) Walk(ctx context.Context, root string, opts filesync.WalkOptions) ([]filesync.Entry, error) {
	nc := r.c.nc
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("client: walk: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req := r.req(root)
	req.Rules, req.Side = opts.Rules, int(opts.Side)
	body, _ := json.Marshal(req)
	if err := nc.PublishRequest(api.FSStreamSubject(api.FSWalk), inbox, body); err != nil {
		return nil, fmt.Errorf("client: walk: %w", err)
	}
	var out []filesync.Entry
	for {
		wctx, cancel := context.WithTimeout(ctx, r.c.timeout)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "walk " + root + ": the gateway did not answer in time", Err: err}
		}
		if err := msgError(m); err != nil {
			return nil, err
		}
		var page api.FSWalkPage
		if err := json.Unmarshal(m.Data, &page); err != nil {
			return nil, fmt.Errorf("client: walk %s: decode page: %w", root, err)
		}
		for _, e := range page.Entries {
			out = append(out, fromWire(e))
		}
		if m.Header.Get(api.HdrMore) == "" {
			return out, nil
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
	nc := r.c.nc
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("client: hashblocks: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req := r.req(p)
	req.BlockSize = blockSize
	body, _ := json.Marshal(req)
	if err := nc.PublishRequest(api.FSStreamSubject(api.FSHashBlocks), inbox, body); err != nil {
		return nil, fmt.Errorf("client: hashblocks: %w", err)
	}
	var out []filesync.BlockSum
	for {
		// Hashing a large file takes a while before the first page.
		wctx, cancel := context.WithTimeout(ctx, max(r.c.timeout, 5*time.Minute))
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: "hashblocks " + p + ": the gateway did not answer in time", Err: err}
		}
		if err := msgError(m); err != nil {
			return nil, err
		}
		var page api.FSSumsPage
		if err := json.Unmarshal(m.Data, &page); err != nil {
			return nil, fmt.Errorf("client: hashblocks %s: decode page: %w", p, err)
		}
		for _, b := range page.Sums {
			var s filesync.Sum
			if err := s.UnmarshalText([]byte(b.Sum)); err != nil {
				return nil, fmt.Errorf("client: hashblocks %s: %w", p, err)
			}
			out = append(out, filesync.BlockSum{Size: b.Size, Sum: s})
		}
		if m.Header.Get(api.HdrMore) == "" {
			return out, nil
		}
	}
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
