package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/filesync"
)

// RunOptions say where and how a command runs.
type RunOptions struct {
	// Node is "head" (default), "all", a 0-based index or a node's address.
	Node string
	Env  map[string]string
	Dir  string
	// Timeout kills the command on the nodes after this long; 0 means none.
	Timeout time.Duration
	// Stdout and Stderr receive every node's output as it arrives.
	Stdout, Stderr io.Writer
	// OnOutput, if set, is called with each chunk of output and the node and
	// stream ("stdout" or "stderr") it came from, never concurrently.
	OnOutput func(node, stream string, data []byte)
	// Capture keeps the output in the results. It is implied when neither
	// writers nor OnOutput are set.
	Capture bool
}

// RunResult is one node's outcome. ExitCode is the command's exit status
// (128+N when killed by signal N), or -1 when it could not run to
// completion; Error then says why (unreachable node, cancelled, timed out).
type RunResult struct {
	Node     string `json:"node"`
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Error    string `json:"error,omitempty"`
}

// runIdle is how long a run stream may be silent: the gateway sends a
// heartbeat every few seconds, so silence this long means it is gone.
const runIdle = 30 * time.Second

// Run runs a shell command on a cluster's nodes and streams its output. It
// returns when every node finished, with one result per node in node order.
// A node that failed to run the command is reported in its result, not as
// an error; the error is for a run that could not be done or followed at all.
// When ctx ends (Ctrl-C), Run asks the gateway to kill the command on every
// node, waits briefly for the final results and returns them with ctx's error.
func (c *Client) Run(ctx context.Context, name, command string, o RunOptions) ([]RunResult, error) {
	inbox := c.nc.NewInbox()
	// A synchronous subscription queues up to 64 MiB, more than the gateway's
	// window lets out before we acknowledge.
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("client: run: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req := api.RunRequest{
		Name: name, Node: o.Node, Command: command, Env: o.Env, Dir: o.Dir,
		TimeoutSeconds: int((o.Timeout + time.Second - 1) / time.Second), RunID: uuid.NewString(),
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: run: %w", err)
	}
	// The answer and all the output come to our own inbox, the request's
	// reply subject: RunAccepted (or an error) first.
	if err := c.nc.PublishRequest(api.SSHStreamSubject(api.SSHOpRun), inbox, body); err != nil {
		return nil, fmt.Errorf("client: run: %w", err)
	}
	// The answer is awaited even if ctx ends meanwhile: the run id then lets
	// us cancel what the gateway may already have started.
	var acc api.RunAccepted
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	first, err := sub.NextMsgWithContext(actx)
	cancel()
	if err != nil {
		_ = c.nc.Publish(api.RunCancelSubject(req.RunID), nil)
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("%s did not answer in time", api.SSHStreamSubject(api.SSHOpRun)), Err: err}
	}
	if err := msgError(first); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(first.Data, &acc); err != nil {
		return nil, fmt.Errorf("client: run: decode answer: %w", err)
	}
	capture := o.Capture || (o.Stdout == nil && o.Stderr == nil && o.OnOutput == nil)
	type out struct{ stdout, stderr bytes.Buffer }
	outs := map[string]*out{}
	for _, n := range acc.Nodes {
		outs[n] = &out{}
	}
	var lastAck int64
	ackEvery := int64(max(acc.Window/4, 1))
	var cancelled bool
	var grace time.Time
	for {
		wctx := ctx
		if cancelled {
			wctx = context.Background()
		}
		deadline := time.Now().Add(runIdle)
		if cancelled && grace.Before(deadline) {
			deadline = grace
		}
		nctx, ncancel := context.WithDeadline(wctx, deadline)
		m, err := sub.NextMsgWithContext(nctx)
		ncancel()
		if err != nil {
			switch {
			case !cancelled && ctx.Err() != nil:
				cancelled = true
				grace = time.Now().Add(10 * time.Second)
				_ = c.nc.Publish(acc.CancelSubject, nil)
				continue
			case cancelled:
				return collect(acc.Nodes, nil, nil), ctx.Err()
			}
			return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("run %s: the gateway stopped sending (nothing for %s)", acc.RunID, runIdle), Err: err}
		}
		switch m.Header.Get(api.HdrEvent) {
		case api.EventData:
			node, stream := m.Header.Get(api.HdrNode), m.Header.Get(api.HdrStream)
			if o.OnOutput != nil {
				o.OnOutput(node, stream, m.Data)
			}
			w := o.Stdout
			if stream == "stderr" {
				w = o.Stderr
			}
			if w != nil {
				_, _ = w.Write(m.Data)
			}
			if capture {
				if b := outs[node]; b != nil {
					if stream == "stderr" {
						b.stderr.Write(m.Data)
					} else {
						b.stdout.Write(m.Data)
					}
				}
			}
			seq, _ := strconv.ParseInt(m.Header.Get(api.HdrSeq), 10, 64)
			if seq-lastAck >= ackEvery {
				lastAck = seq
				_ = c.nc.Publish(acc.AckSubject, []byte(strconv.FormatInt(seq, 10)))
			}
		case api.EventDone:
			var done api.RunDone
			if err := json.Unmarshal(m.Data, &done); err != nil {
				return nil, fmt.Errorf("client: run %s: decode results: %w", acc.RunID, err)
			}
			res := collect(acc.Nodes, done.Results, func(n string) (string, string) {
				if b := outs[n]; b != nil {
					return b.stdout.String(), b.stderr.String()
				}
				return "", ""
			})
			if cancelled {
				return res, ctx.Err()
			}
			return res, nil
		}
	}
}

func collect(nodes []string, rs []api.RunNodeResult, output func(string) (string, string)) []RunResult {
	byNode := map[string]api.RunNodeResult{}
	for _, r := range rs {
		byNode[r.Node] = r
	}
	out := make([]RunResult, 0, len(nodes))
	for _, n := range nodes {
		r, ok := byNode[n]
		if !ok {
			r = api.RunNodeResult{Node: n, ExitCode: -1, Error: "no result (cancelled)"}
		}
		rr := RunResult{Node: n, ExitCode: r.ExitCode, Error: r.Error}
		if output != nil {
			rr.Stdout, rr.Stderr = output(n)
		}
		out = append(out, rr)
	}
	return out
}

// Nodes lists the labels of the cluster's nodes a selector picks.
func (c *Client) Nodes(ctx context.Context, name, node string) ([]string, error) {
	var r api.NodesReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpNodes), api.NodesRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

// SSHInfo returns what an SSH client needs to reach one node, including the
// cluster's private key: keep it out of output and logs.
func (c *Client) SSHInfo(ctx context.Context, name, node string) (*api.ConnectReply, error) {
	var r api.ConnectReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpConnect), api.ConnectRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Trust forgets the recorded host keys of the cluster's nodes, after a
// legitimate change (a reinstalled machine); the next Up records the new
// ones. It returns the host:port forgotten.
func (c *Client) Trust(ctx context.Context, name string) ([]string, error) {
	var r api.TrustReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpTrust), api.NameRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return r.Forgotten, nil
}

// SyncOptions control Put and Get.
type SyncOptions struct {
	// Node is "head" (default), "all", an index or an address.
	Node string
	// Delete removes what the source does not have.
	Delete bool
	// Exclude holds gitignore-style patterns.
	Exclude []string
	// Filter holds rsync-style filter rules ("- *.o", "+ keep/", ":- .gitignore"),
	// checked before Exclude.
	Filter []string
	// WholeFile sends changed files whole even where the node runs the agent
	// (which otherwise sends only changed blocks of large files).
	WholeFile bool
	// Checksum compares contents instead of size and modification time.
	Checksum bool
	DryRun   bool
	// Parallel bounds concurrent file transfers per node (default 8).
	Parallel int
}

// SyncResult is what one node's transfer did.
type SyncResult struct {
	Node         string `json:"node"`
	FilesSeen    int    `json:"files_seen"`
	FilesSent    int    `json:"files_sent"`
	SymlinksSent int    `json:"symlinks_sent"`
	DirsCreated  int    `json:"dirs_created"`
	FilesDeleted int    `json:"files_deleted"`
	BytesSent    int64  `json:"bytes_sent"`
	BytesSkipped int64  `json:"bytes_skipped"`
}

// Put makes remote on the chosen nodes a copy of local, moving only what
// changed (see filesync.Sync for the path rules). Files stream in chunks;
// nothing is held whole in memory.
func (c *Client) Put(ctx context.Context, name, local, remote string, o SyncOptions) ([]SyncResult, error) {
	return c.sync(ctx, name, o, func(r filesync.FS, _ bool) (filesync.FS, string, filesync.FS, string) {
		return filesync.LocalFS{}, local, r, remote
	})
}

// GetFiles makes local a copy of remote on the chosen node (Get is taken by
// cluster records). With several nodes,
// each one's copy goes to local/<node>.
func (c *Client) GetFiles(ctx context.Context, name, remote, local string, o SyncOptions) ([]SyncResult, error) {
	return c.sync(ctx, name, o, func(r filesync.FS, several bool) (filesync.FS, string, filesync.FS, string) {
		dst := local
		if several {
			dst = path.Join(local, nodeOf(r))
		}
		return r, remote, filesync.LocalFS{}, dst
	})
}

func (c *Client) sync(ctx context.Context, name string, o SyncOptions, ends func(filesync.FS, bool) (filesync.FS, string, filesync.FS, string)) ([]SyncResult, error) {
	if _, err := filesync.ParseFilter(o.Filter); err != nil {
		return nil, &rh.Error{Code: rh.EINVALID, Field: "filter", Message: err.Error()}
	}
	// Asking which nodes run the agent starts it where it should run.
	var nr api.NodesReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpNodes), api.NodesRequest{Name: name, Node: o.Node, Agent: true}, &nr); err != nil {
		return nil, err
	}
	nodes := nr.Nodes
	opts := filesync.Options{Delete: o.Delete, Exclude: o.Exclude, Filter: o.Filter, Checksum: o.Checksum, DryRun: o.DryRun,
		Parallel: o.Parallel, WholeFile: o.WholeFile}
	res := make([]SyncResult, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			var rfs filesync.FS = &remoteFS{c: c, name: name, node: n}
			if i < len(nr.Agents) && nr.Agents[i] {
				rfs = &agentRemoteFS{remoteFS{c: c, name: name, node: n}}
			}
			src, sp, dst, dp := ends(rfs, len(nodes) > 1)
			st, err := filesync.Sync(ctx, src, sp, dst, dp, opts)
			res[i] = SyncResult{Node: n, FilesSeen: st.FilesSeen, FilesSent: st.FilesSent, SymlinksSent: st.SymlinksSent,
				DirsCreated: st.DirsCreated, FilesDeleted: st.FilesDeleted, BytesSent: st.BytesSent, BytesSkipped: st.BytesSkipped}
			if err != nil {
				errs[i] = fmt.Errorf("node %s: %w", n, err)
			}
		})
	}
	wg.Wait()
	return res, errors.Join(errs...)
}

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

// fileWindow is how many chunks of one file are in flight.
const fileWindow = 8

// handleTimeout bounds the wait for one chunk's answer.
const handleTimeout = 60 * time.Second

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

// msgError decodes an error answer of a raw request, as Call does.
func msgError(m *nats.Msg) error {
	if m.Header.Get("Status") == "503" {
		return &rh.Error{Code: rh.EUNAVAILABLE, Message: "no sshgateway service answers: is `rhcli serve` running with it?"}
	}
	if m.Header.Get(micro.ErrorCodeHeader) == "" {
		return nil
	}
	var e rh.Error
	if json.Unmarshal(m.Data, &e) == nil && e.Code != "" {
		return fsError(&e)
	}
	return &rh.Error{Code: rh.EINTERNAL, Message: m.Header.Get(micro.ErrorHeader)}
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

// nodeOf names the node a remote FS is about.
func nodeOf(f filesync.FS) string {
	switch r := f.(type) {
	case *remoteFS:
		return r.node
	case *agentRemoteFS:
		return r.node
	}
	return ""
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

// LiveStatus reports the live state of a cluster's nodes (node "" = all):
// agent version and uptime, CPU, memory, disk and GPU use, running commands;
// or, for a node without an agent, why.
func (c *Client) LiveStatus(ctx context.Context, name, node string) (*api.LiveReply, error) {
	var r api.LiveReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpStatus), api.LiveRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RestartAgent kills and restarts the agent on a cluster's nodes (node "" =
// all) and reports the new agents.
func (c *Client) RestartAgent(ctx context.Context, name, node string) (*api.LiveReply, error) {
	var r api.LiveReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpRestartAgent), api.LiveRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
