package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/rhq/rh/internal/filesync"
)

// fs.writefiles (protocol 2): a batch of small files in one stream. The OPEN
// request lists the files (path relative to Path, perm, mtime, size); their
// contents follow as DATA, concatenated in order, then EOF. The agent reads
// the whole batch, refuses it whole if an entry would escape Path (nothing
// written), then writes each file atomically with its mode and mtime.

type batchFile struct {
	Path  string      `json:"path"`
	Perm  fs.FileMode `json:"perm"`
	MTime time.Time   `json:"mtime"`
	Size  int         `json:"size"`
}

type batchReq struct {
	Op    string      `json:"op"`
	Path  string      `json:"path"`
	Files []batchFile `json:"files"`
}

// BatchResult is fs.writefiles's answer: how many files were written and,
// if one failed, which and why.
type batchResult struct {
	Written int          `json:"written"`
	Failed  *batchFailed `json:"failed,omitempty"`
}

type batchFailed struct {
	Index int    `json:"index"`
	Path  string `json:"path"`
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

func (srv *server) fsWriteFiles(s *stream, payload []byte) (any, error) {
	var req batchReq
	if err := decodeReq(payload, &req); err != nil {
		return nil, err
	}
	if len(req.Files) > filesync.BatchMaxFiles {
		return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("writefiles: %d files exceed the %d a batch may hold", len(req.Files), filesync.BatchMaxFiles)}
	}
	total := 0
	for _, f := range req.Files {
		if f.Size < 0 || f.Size > filesync.SmallFileMax {
			return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("writefiles: %q: size %d is outside 0-%d", f.Path, f.Size, filesync.SmallFileMax)}
		}
		total += f.Size
	}
	if total > filesync.BatchMaxBytes {
		return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("writefiles: %d bytes of content exceed the %d a batch may hold", total, filesync.BatchMaxBytes)}
	}
	body := &streamReader{ctx: s.ctx, s: s, op: "fs.writefiles"}
	data := make([]byte, total)
	if _, err := io.ReadFull(body, data); err != nil {
		return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("writefiles: content ended after fewer than the %d bytes listed: %v", total, err)}
	}
	if n, _ := body.Read(make([]byte, 1)); n > 0 {
		return nil, &codedError{code: codeBadRequest, msg: fmt.Sprintf("writefiles: more content than the %d bytes listed", total)}
	}
	files := make([]filesync.SmallFile, len(req.Files))
	for i, f := range req.Files {
		files[i] = filesync.SmallFile{Path: f.Path, Perm: f.Perm, ModTime: f.MTime, Data: data[:f.Size:f.Size]}
		data = data[f.Size:]
	}
	n, err := filesync.WriteFilesFS(s.ctx, local, req.Path, files)
	res := batchResult{Written: n}
	var be *filesync.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		res.Failed = &batchFailed{Index: be.Index, Path: be.Path, Error: be.Err.Error(), Code: codeOf(be.Err)}
	default:
		return nil, err
	}
	return res, nil
}

// BatchMaxBytes implements filesync.Batcher: a batch is one stream, any
// size the engine picks.
func (r *RemoteFS) BatchMaxBytes() int { return filesync.BatchMaxBytes }

// WriteFiles implements filesync.Batcher: one stream carries the whole batch.
func (r *RemoteFS) WriteFiles(ctx context.Context, root string, files []filesync.SmallFile) (int, error) {
	req := batchReq{Op: "fs.writefiles", Path: root, Files: make([]batchFile, len(files))}
	for i, f := range files {
		req.Files[i] = batchFile{Path: f.Path, Perm: f.Perm, MTime: f.ModTime, Size: len(f.Data)}
	}
	if r.c.OnRoundTrip != nil {
		start := time.Now()
		defer func() { r.c.OnRoundTrip(req.Op, time.Since(start)) }()
	}
	s, err := r.c.open(req)
	if err != nil {
		return 0, fmt.Errorf("agent: fs.writefiles: %w", err)
	}
	defer r.c.conn.forget(s)
	w := &remoteWriter{c: r.c, s: s, ctx: ctx}
	for _, f := range files {
		if err := s.sendData(ctx, chanIn, f.Data); err != nil {
			if ctx.Err() != nil {
				return 0, r.c.abandon(s, req.Op, ctx)
			}
			return 0, w.failed(req.Op, err)
		}
	}
	if err := r.c.conn.sendCtrl(frameEOF, s.id, nil); err != nil {
		return 0, fmt.Errorf("agent: fs.writefiles: %w", err)
	}
	var res batchResult
	if err := awaitResultValue(ctx, s, req.Op, &res); err != nil {
		return 0, err
	}
	if f := res.Failed; f != nil {
		return res.Written, &filesync.BatchError{Index: f.Index, Path: f.Path, Err: &RemoteError{Op: req.Op, Code: f.Code, Msg: f.Error}}
	}
	return res.Written, nil
}
