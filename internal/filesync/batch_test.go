package filesync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// batchFS is LocalFS that also takes batches, counting them.
type batchFS struct {
	LocalFS
	maxBytes int
	mu       sync.Mutex
	calls    int
	files    int
}

func (b *batchFS) BatchMaxBytes() int { return b.maxBytes }

func (b *batchFS) WriteFiles(ctx context.Context, root string, files []SmallFile) (int, error) {
	b.mu.Lock()
	b.calls++
	b.files += len(files)
	b.mu.Unlock()
	return WriteFilesFS(ctx, b.LocalFS, root, files)
}

func TestSyncSendsSmallFilesInBatches(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "dst")
	tree := sampleTree()
	for i := range 300 {
		tree[fmt.Sprintf("many/d%d/f%03d", i%3, i)] = node{content: strings.Repeat("y", i*7), mode: 0o600 + fs755(i)}
	}
	writeTree(t, src, tree)
	b := &batchFS{maxBytes: 64 << 10}
	st := mustSync(t, LocalFS{}, slash(src), b, slash(dst), Options{})
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), true), snapshot(t, LocalFS{}, slash(dst), true))
	// 308 files of which one (100 kB) is too large for a batch; the rest
	// hold ~315 kB: a handful of batches, not one request per file.
	if st.FilesSent != 308 || b.files != 307 {
		t.Errorf("stats %+v, %d files batched: want 308 sent, 307 of them in batches", st, b.files)
	}
	if b.calls < 5 || b.calls > 12 {
		t.Errorf("%d batches for ~315 kB with a 64 KiB limit", b.calls)
	}

	// A re-sync sends nothing; a changed small file goes in a batch again.
	b.calls, b.files = 0, 0
	if st := mustSync(t, LocalFS{}, slash(src), b, slash(dst), Options{}); st.FilesSent != 0 || b.calls != 0 {
		t.Errorf("re-sync: stats %+v, %d batches; want nothing sent", st, b.calls)
	}
	writeTree(t, src, map[string]node{"many/d0/f000": {content: "now it has content", mode: 0o640}})
	if st := mustSync(t, LocalFS{}, slash(src), b, slash(dst), Options{}); st.FilesSent != 1 || b.files != 1 {
		t.Errorf("after a change: stats %+v, %d batched; want the one file, batched", st, b.files)
	}
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), true), snapshot(t, LocalFS{}, slash(dst), true))
}

func fs755(i int) os.FileMode { return os.FileMode(i%2) * 0o155 }

// A batch is checked whole before anything is written: one entry that would
// escape (through a symlink, with "..", absolute) refuses it, naming the entry.
func TestWriteFilesRefusesABatchWithOneBadEntry(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "lnk")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"lnk/authorized_keys", "../x", "/abs", "sub/../../y", "file/z", "missing/f", "sub//f", ""} {
		t.Run(bad, func(t *testing.T) {
			files := []SmallFile{{Path: "ok1", Data: []byte("1"), Perm: 0o644}, {Path: bad, Data: []byte("x"), Perm: 0o644},
				{Path: "sub/ok2", Data: []byte("2"), Perm: 0o644}}
			n, err := WriteFilesFS(context.Background(), LocalFS{}, slash(root), files)
			var be *BatchError
			if n != 0 || !errors.As(err, &be) || be.Index != 1 || be.Path != bad {
				t.Fatalf("WriteFiles = %d, %v; want 0 and a BatchError for entry 1", n, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
				t.Errorf("error does not name the entry: %v", err)
			}
			for _, p := range []string{filepath.Join(root, "ok1"), filepath.Join(root, "sub", "ok2"), filepath.Join(outside, "authorized_keys"),
				filepath.Join(base, "x"), filepath.Join(base, "y")} {
				if exists(p) {
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}

// A file the destination refuses fails alone; the rest of its batch arrives.
func TestSyncBatchFailureIsPerFile(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"a": {content: "a"}, "b": {content: "b"}, "c": {content: "c"}})
	// The destination has a directory where b goes: its rename fails.
	if err := os.MkdirAll(filepath.Join(dst, "b", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &batchFS{maxBytes: 1 << 20}
	_, err := Sync(context.Background(), LocalFS{}, slash(src), &protectB{b}, slash(dst), Options{})
	if err == nil || !strings.Contains(err.Error(), "/b") {
		t.Fatalf("sync error = %v, want one naming b", err)
	}
	for _, f := range []string{"a", "c"} {
		if got := readFile(t, filepath.Join(dst, f)); got != f {
			t.Errorf("%s = %q", f, got)
		}
	}
}

// protectB hides the destination's b from walks, so the engine does not
// replace it and the batch meets it.
type protectB struct{ *batchFS }

func (p *protectB) Walk(ctx context.Context, root string, opts WalkOptions) ([]Entry, error) {
	es, err := p.batchFS.Walk(ctx, root, opts)
	out := es[:0]
	for _, e := range es {
		if e.Path != "b" && !strings.HasPrefix(e.Path, "b/") {
			out = append(out, e)
		}
	}
	return out, err
}
