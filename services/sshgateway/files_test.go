package sshgateway_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
)

// makeTree writes a tree with several modes, a multi-chunk file, an empty
// directory and a symlink, all with old modification times.
func makeTree(t *testing.T, root string) {
	t.Helper()
	big := make([]byte, 3<<20+123)
	_, _ = rand.Read(big)
	files := []struct {
		path string
		mode fs.FileMode
		data []byte
	}{
		{"a.txt", 0o644, []byte("hello\n")},
		{"bin/run.sh", 0o755, []byte("#!/bin/sh\necho run\n")},
		{"secret/key", 0o600, []byte("not really a key")},
		{"data/big.bin", 0o640, big},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink == 0 {
			_ = os.Chtimes(p, old, old)
		}
		return nil
	})
}

// treeSummary describes a tree: type, permissions, mtime (seconds) and
// content sum of every entry.
func treeSummary(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, "%s link %s\n", rel, target)
		case fi.IsDir():
			fmt.Fprintf(&b, "%s dir %v %d\n", rel, fi.Mode().Perm(), fi.ModTime().Unix())
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s file %v %d %x\n", rel, fi.Mode().Perm(), fi.ModTime().Unix(), sha256.Sum256(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPutGetRoundTrip(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	e.create(t, "files", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, "files", rh.PhaseUp)

	src := t.TempDir()
	makeTree(t, src)
	// The node runs on this machine, so its files can be checked directly.
	remote := filepath.Join(n.TempDir(t), "dst")
	res, err := e.cl.Upload(ctx, "files", src, remote, client.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].FilesSent != 4 || res[0].BytesSent != 3<<20+123+6+19+16 || res[0].SymlinksSent != 1 {
		t.Fatalf("first put = %+v", res)
	}
	want := treeSummary(t, src)
	if got := treeSummary(t, remote); got != want {
		t.Fatalf("remote tree differs:\n got %s\nwant %s", got, want)
	}
	// Each file sent is one upload in the transfer timings.
	if got := transfers(t, e, "upload"); got != 4 {
		t.Fatalf("rh_ssh_command_duration_seconds{kind=byo,op=upload} counted %d transfers, want 4", got)
	}

	// Nothing changed: nothing moves.
	res, err = e.cl.Upload(ctx, "files", src, remote, client.SyncOptions{})
	if err != nil || res[0].FilesSent != 0 || res[0].BytesSent != 0 || res[0].SymlinksSent != 0 {
		t.Fatalf("second put = %+v, %v", res, err)
	}

	// Same size and time, other content: only --checksum notices.
	a := filepath.Join(src, "a.txt")
	st, _ := os.Stat(a)
	_ = os.WriteFile(a, []byte("HELLO\n"), 0o644)
	_ = os.Chtimes(a, st.ModTime(), st.ModTime())
	res, err = e.cl.Upload(ctx, "files", src, remote, client.SyncOptions{})
	if err != nil || res[0].FilesSent != 0 {
		t.Fatalf("put without checksum = %+v, %v", res, err)
	}
	res, err = e.cl.Upload(ctx, "files", src, remote, client.SyncOptions{Checksum: true})
	if err != nil || res[0].FilesSent != 1 {
		t.Fatalf("put with checksum = %+v, %v", res, err)
	}

	// --delete removes what the source lost; --exclude leaves things out.
	_ = os.Remove(filepath.Join(src, "secret", "key"))
	res, err = e.cl.Upload(ctx, "files", src, remote, client.SyncOptions{Delete: true})
	if err != nil || res[0].FilesDeleted != 1 {
		t.Fatalf("put --delete = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(remote, "secret", "key")); !os.IsNotExist(err) {
		t.Fatalf("deleted file still on the node: %v", err)
	}
	other := filepath.Join(n.TempDir(t), "excl")
	if _, err := e.cl.Upload(ctx, "files", src, other, client.SyncOptions{Exclude: []string{"*.bin"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, "data", "big.bin")); !os.IsNotExist(err) {
		t.Fatalf("excluded file was sent: %v", err)
	}

	// And back.
	back := filepath.Join(t.TempDir(), "back")
	res, err = e.cl.Download(ctx, "files", remote, back, client.SyncOptions{})
	if err != nil || res[0].FilesSent != 3 {
		t.Fatalf("get = %+v, %v", res, err)
	}
	if got, want := treeSummary(t, back), treeSummary(t, src); got != want {
		t.Fatalf("fetched tree differs:\n got %s\nwant %s", got, want)
	}
	if got := transfers(t, e, "download"); got != 3 {
		t.Fatalf("rh_ssh_command_duration_seconds{kind=byo,op=download} counted %d transfers, want 3", got)
	}
	// The walks went to the node's agent, and each round trip was timed.
	if got := histogramCount(t, e, "rh_ssh_agent_request_duration_seconds", map[string]string{"op": "fs.walk"}); got == 0 {
		t.Fatal("no agent fs.walk round trip was timed")
	}
	// A missing remote path is reported as such.
	if _, err := e.cl.Download(ctx, "files", filepath.Join(remote, "nope"), back, client.SyncOptions{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("get of a missing path: %v", err)
	}
}

// transfers is how many file transfers of op the gateway timed for BYO nodes.
func transfers(t *testing.T, e *env, op string) uint64 {
	t.Helper()
	return histogramCount(t, e, "rh_ssh_command_duration_seconds", map[string]string{"kind": string(rh.KindBYO), "op": op})
}

// histogramCount is the sample count of the series of histogram name whose
// labels include want.
func histogramCount(t *testing.T, e *env, name string, want map[string]string) uint64 {
	t.Helper()
	mfs, err := e.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return m.GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s%v series", name, want)
	return 0
}

// A node's file system answers a user can act on reach the user in the
// node's words, with the code of what went wrong, not as "internal error".
func TestAPathThroughAFileIsInvalidNotInternal(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	n := e.oneNode(t, "paths", sshnode.Options{})
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(n.TempDir(t), "file")
	if _, err := e.cl.Upload(ctx, "paths", filepath.Join(src, "a"), file, client.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.cl.Upload(ctx, "paths", src, filepath.Join(file, "sub"), client.SyncOptions{})
	if rh.ErrorCode(err) != rh.EINVALID || !strings.Contains(err.Error(), filepath.Join(file, "sub")+": not a directory") {
		t.Fatalf("put under a file: %v (code %q), want invalid, saying \"not a directory\"", err, rh.ErrorCode(err))
	}
}
