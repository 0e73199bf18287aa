package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rhq/rh/internal/filesync"
)

var baseTime = time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.UTC)

// writeSample builds a tree with modes, mtimes, symlinks and nesting.
func writeSample(t *testing.T, root string) {
	t.Helper()
	files := []struct {
		path string
		mode fs.FileMode
		data string
	}{
		{"a.txt", 0o644, "alpha\n"},
		{"run.sh", 0o755, "#!/bin/sh\necho hi\n"},
		{"secret", 0o600, "s3cret"},
		{"dir/b.bin", 0o640, "\x00\x01\x02binary\xff"},
		{"dir/sub/deep.txt", 0o644, "deep"},
		{"empty", 0o644, ""},
	}
	for i, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		mt := baseTime.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../nowhere", filepath.Join(root, "dir/dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "dir/sub"), 0o750); err != nil {
		t.Fatal(err)
	}
}

type snapEntry struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	link  string
	data  string
}

func snapshot(t *testing.T, root string) map[string]snapEntry {
	t.Helper()
	ents, err := filesync.LocalFS{}.Walk(context.Background(), root, filesync.WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]snapEntry{}
	for _, e := range ents {
		se := snapEntry{mode: e.Mode, size: e.Size, link: e.LinkTarget}
		if e.IsRegular() {
			b, err := os.ReadFile(filepath.Join(root, e.Path))
			if err != nil {
				t.Fatal(err)
			}
			se.data = string(b)
		}
		if !e.IsSymlink() {
			se.mtime = e.ModTime.UTC()
		}
		if e.IsDir() {
			se.mtime = time.Time{} // directory mtimes move as entries are added
		}
		out[e.Path] = se
	}
	return out
}

func sameTree(t *testing.T, a, b map[string]snapEntry) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("trees differ: %d vs %d entries\n%v\n%v", len(a), len(b), a, b)
	}
	for p, ea := range a {
		if eb, ok := b[p]; !ok || ea != eb {
			t.Errorf("%s: %+v vs %+v", p, ea, eb)
		}
	}
}

func TestSyncRoundTrip(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	rfs := c.FS()
	ctx := ctxT(t, 30*time.Second)
	src := t.TempDir()
	writeSample(t, src)
	dst := filepath.Join(t.TempDir(), "node", "copy")

	st, err := filesync.Sync(ctx, filesync.LocalFS{}, src, rfs, dst, filesync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.FilesSent != 6 || st.SymlinksSent != 2 {
		t.Errorf("put: %+v, want 6 files and 2 symlinks", st)
	}
	sameTree(t, snapshot(t, src), snapshot(t, dst))
	if st, err := filesync.Sync(ctx, filesync.LocalFS{}, src, rfs, dst, filesync.Options{}); err != nil || st.FilesSent != 0 || st.BytesSent != 0 || st.SymlinksSent != 0 {
		t.Fatalf("second put: %+v, %v; want nothing sent", st, err)
	}
	// Checksum mode compares by hashes computed on the node.
	if st, err := filesync.Sync(ctx, filesync.LocalFS{}, src, rfs, dst, filesync.Options{Checksum: true}); err != nil || st.FilesSent != 0 {
		t.Fatalf("checksum put: %+v, %v", st, err)
	}

	// get: node → local, then a deletion travels back.
	back := filepath.Join(t.TempDir(), "back")
	if _, err := filesync.Sync(ctx, rfs, dst, filesync.LocalFS{}, back, filesync.Options{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, snapshot(t, src), snapshot(t, back))
	if err := os.Remove(filepath.Join(src, "secret")); err != nil {
		t.Fatal(err)
	}
	if st, err := filesync.Sync(ctx, filesync.LocalFS{}, src, rfs, dst, filesync.Options{Delete: true}); err != nil || st.FilesDeleted != 1 {
		t.Fatalf("delete: %+v, %v", st, err)
	}
	sameTree(t, snapshot(t, src), snapshot(t, dst))

	// Errors keep their meaning across the wire.
	if _, err := rfs.Stat(ctx, filepath.Join(dst, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat missing: %v", err)
	}
	if _, err := rfs.Open(ctx, filepath.Join(dst, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open missing: %v", err)
	}
	if _, err := rfs.Create(ctx, filepath.Join(dst, "no/such/dir/f"), 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Create in missing dir: %v", err)
	}
	// Filters are applied on the node.
	ents, err := rfs.Walk(ctx, dst, filesync.WalkOptions{Rules: []string{"- dir/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Path == "dir" || filepath.Dir(e.Path) == "dir" {
			t.Fatalf("filtered walk listed %s", e.Path)
		}
	}
	// An aborted write leaves nothing behind.
	w, err := rfs.Create(ctx, filepath.Join(dst, "aborted"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dst, ".aborted*")); len(left) != 0 {
		t.Fatalf("abort left %v", left)
	}
}

func TestSyncDelta64MB(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	rfs := c.FS()
	ctx := ctxT(t, 50*time.Second)
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := filepath.Join(srcDir, "big.bin"), filepath.Join(dstDir, "big.bin")
	data := make([]byte, 64<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := filesync.Sync(ctx, filesync.LocalFS{}, src, rfs, dst, filesync.Options{})
	if err != nil || st.BytesSent != int64(len(data)) {
		t.Fatalf("first sync: %+v, %v", st, err)
	}
	// Change 1 MB in the middle.
	rand.Read(data[20<<20 : 21<<20])
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Now().Add(time.Hour)
	os.Chtimes(src, mt, mt)
	start := time.Now()
	st, err = filesync.Sync(ctx, filesync.LocalFS{}, src, rfs, dst, filesync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bs := int64(filesync.BlockSizeFor(int64(len(data))))
	if st.FilesSent != 1 || st.BytesSent < 1<<20 || st.BytesSent > 1<<20+2*bs {
		t.Fatalf("delta sync: %+v; want ~1 MB sent (block size %d)", st, bs)
	}
	t.Logf("delta: sent %d of %d bytes in %s", st.BytesSent, len(data), time.Since(start))
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs after delta (%v)", err)
	}
	// Reading back through ReadAt only fetches what is asked for.
	r, err := rfs.Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 100)
	if n, err := r.(io.ReaderAt).ReadAt(buf, 20<<20); n != 100 || err != nil || !bytes.Equal(buf, data[20<<20:20<<20+100]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if n, err := r.(io.ReaderAt).ReadAt(buf, int64(len(data))-10); n != 10 || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt at end = %d, %v", n, err)
	}
}
