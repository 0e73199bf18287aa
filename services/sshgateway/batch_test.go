package sshgateway_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/services/sshgateway"
)

// agentTrips is how many agent round trips of op the gateway counted.
func agentTrips(t *testing.T, reg *prometheus.Registry, op string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rh_ssh_agent_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == op {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// smallTree writes n small files over a few directories, with assorted
// modes and old mtimes.
func smallTree(t *testing.T, root string, n int) {
	t.Helper()
	old := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%04d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if i%3 == 0 {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprint(i), i%500)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		mt := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// A first put of many small files sends them in batches (content, mode and
// mtime together), through the agent and over plain SFTP alike, and the
// copy is exact.
func TestPutOfSmallFilesGoesInBatches(t *testing.T) {
	for _, agent := range []bool{true, false} {
		t.Run(fmt.Sprintf("agent=%v", agent), func(t *testing.T) {
			e := startWith(t, func(c *sshgateway.Config) { c.DisableAgent = !agent })
			node := e.oneNode(t, "small", sshnode.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			src := t.TempDir()
			smallTree(t, src, 600)
			remote := filepath.Join(node.TempDir(t), "r")
			r, err := e.cl.Upload(ctx, "small", src, remote, client.SyncOptions{})
			if err != nil || len(r) != 1 || r[0].FilesSent != 600 {
				t.Fatalf("put = %+v, %v", r, err)
			}
			if got, want := treeSummary(t, remote), treeSummary(t, src); got != want {
				t.Fatalf("remote tree differs:\n%s\nwant:\n%s", got, want)
			}
			if agent {
				// One batch per ~MiB, not create/write/commit/chtimes per file.
				if n := agentTrips(t, e.prom, "fs.writefiles"); n == 0 || n > 10 {
					t.Errorf("%d fs.writefiles round trips for 600 small files", n)
				}
				if n := agentTrips(t, e.prom, "fs.chtimes"); n > 20 {
					t.Errorf("%d fs.chtimes round trips: files were sent one by one", n)
				}
			}
			// Unchanged: nothing goes again.
			if r, err := e.cl.Upload(ctx, "small", src, remote, client.SyncOptions{}); err != nil || r[0].FilesSent != 0 {
				t.Fatalf("re-put = %+v, %v", r, err)
			}
		})
	}
}

// Hostile batches, sent straight to the endpoint: an entry through a symlink
// on the node, with "..", or absolute is refused with its name, and nothing
// of the batch is written, with or without the agent.
func TestWriteFilesBatchWithABadEntryWritesNothing(t *testing.T) {
	for _, agent := range []bool{true, false} {
		t.Run(fmt.Sprintf("agent=%v", agent), func(t *testing.T) {
			e := startWith(t, func(c *sshgateway.Config) { c.DisableAgent = !agent })
			node := e.oneNode(t, "hostile", sshnode.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			base := node.TempDir(t)
			root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
			for _, d := range []string{root, outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(outside, filepath.Join(root, "lnk")); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"lnk/authorized_keys", "../escaped", "/tmp/rh-batch-abs", "a/../../b"} {
				req := api.FSWriteFilesRequest{Name: "hostile", Path: root, Files: []api.FSFile{
					{Path: "first", Perm: 0o644, Data: []byte("1")},
					{Path: bad, Perm: 0o644, Data: []byte("pwned")},
					{Path: "last", Perm: 0o644, Data: []byte("3")},
				}}
				var rep api.FSWriteFilesReply
				if err := e.cl.Call(ctx, api.FSSubject(api.FSWriteFiles), req, &rep); err != nil {
					t.Fatalf("%s: %v", bad, err)
				}
				if rep.Written != 0 || rep.Failed == nil || rep.Failed.Index != 1 || rep.Failed.Path != bad ||
					rep.Failed.Code != rh.EINVALID || !strings.Contains(rep.Failed.Message, bad) {
					t.Fatalf("%s: reply %+v %+v; want nothing written and entry 1 refused by name", bad, rep, rep.Failed)
				}
				for _, p := range []string{filepath.Join(root, "first"), filepath.Join(root, "last"), filepath.Join(outside, "authorized_keys"),
					filepath.Join(base, "escaped"), "/tmp/rh-batch-abs", filepath.Join(base, "b")} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s: %s was written", bad, p)
					}
				}
			}
			// A batch too large for the rules is invalid, naming the field.
			big := api.FSWriteFilesRequest{Name: "hostile", Path: root, Files: []api.FSFile{{Path: "big", Data: make([]byte, 65<<10)}}}
			err := e.cl.Call(ctx, api.FSSubject(api.FSWriteFiles), big, nil)
			if rh.ErrorCode(err) != rh.EINVALID || !strings.Contains(err.Error(), "files") {
				t.Errorf("oversized file in a batch: %v, want invalid naming files", err)
			}
		})
	}
}
