package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/filesync"
)

// SyncOptions control Upload and Download.
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
	// Error says why this node's copy did not finish (the counts are what
	// it did until then); empty when it did.
	Error string `json:"error,omitempty"`
}

// Upload makes remote on the chosen nodes a copy of local, moving only what
// changed (see filesync.Sync for the path rules); `rhcli put`. Files stream
// in chunks; nothing is held whole in memory.
func (c *Client) Upload(ctx context.Context, name, local, remote string, o SyncOptions) ([]SyncResult, error) {
	// A missing source is this machine's business: say so before any node
	// is asked, and without per-node results.
	if _, err := os.Lstat(local); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &rh.Error{Code: rh.ENOTFOUND, Field: "local", Message: fmt.Sprintf("%s does not exist", local)}
		}
		return nil, &rh.Error{Code: rh.EINVALID, Field: "local", Message: fmt.Sprintf("%s cannot be read", local), Err: err}
	}
	return c.sync(ctx, name, o, func(r filesync.FS, _ bool) (filesync.FS, string, filesync.FS, string) {
		return filesync.LocalFS{}, local, r, remote
	})
}

// Download makes local a copy of remote on the chosen node, as Upload does
// the other way; `rhcli get`. With several nodes, each one's copy goes to
// local/<node>.
func (c *Client) Download(ctx context.Context, name, remote, local string, o SyncOptions) ([]SyncResult, error) {
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
				res[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	return res, errors.Join(errs...)
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
