package filesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileFS is a source whose walk lists what a hostile node could send:
// the real files of its root, plus crafted entries.
type hostileFS struct {
	LocalFS
	extra []Entry
}

func (h hostileFS) Walk(ctx context.Context, root string, opts WalkOptions) ([]Entry, error) {
	es, err := h.LocalFS.Walk(ctx, root, opts)
	return append(es, h.extra...), err
}

func TestGetRefusesEntriesThatEscapeTheDestination(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "node")
	dst := filepath.Join(base, "local", "dst")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{src, filepath.Join(base, "local"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "ok.txt"), []byte("fine"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The node's tree: a symlink lnk → outside, and a file "under" it.
	if err := os.Symlink(outside, filepath.Join(src, "lnk")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	file := func(p string) Entry { return Entry{Path: p, Mode: 0o644, Size: 4, ModTime: now} }
	h := hostileFS{extra: []Entry{
		file("../../../x"),
		file("/abs"),
		file("a/../../y"),
		file("lnk/authorized_keys"),
		file("ok.txt/z"),
	}}
	_, err := Sync(context.Background(), h, src, LocalFS{}, dst, Options{})
	if !errors.Is(err, ErrEscape) {
		t.Fatalf("sync error = %v, want ErrEscape", err)
	}
	for _, want := range []string{`"../../../x"`, `"/abs"`, `"a/../../y"`, `"lnk/authorized_keys"`, `symlink "lnk"`, `"ok.txt/z"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	// Nothing escaped: not next to the destination, not through the link.
	for _, p := range []string{filepath.Join(base, "x"), filepath.Join(base, "local", "x"), "/abs", filepath.Join(base, "y"),
		filepath.Join(outside, "authorized_keys")} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was written (err %v)", p, err)
		}
	}
	// What was fine arrived.
	if got := readFile(t, filepath.Join(dst, "ok.txt")); got != "fine" {
		t.Fatalf("ok.txt = %q", got)
	}
}

// The destination already
// holds lnk → elsewhere; a source directory lnk with a file under it must
// replace the link, never write through it.
func TestSyncReplacesDestinationSymlinkInsteadOfFollowingIt(t *testing.T) {
	base := t.TempDir()
	src, dst, outside := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "outside")
	writeTree(t, src, map[string]node{"lnk/f": {content: "x"}})
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dst, "lnk")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, LocalFS{}, src, LocalFS{}, dst, Options{})
	if _, err := os.Lstat(filepath.Join(outside, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("written through the destination's symlink (err %v)", err)
	}
	if got := readFile(t, filepath.Join(dst, "lnk", "f")); got != "x" {
		t.Fatalf("lnk/f = %q", got)
	}
}

// An error names its path once, whether it came from the local file system
// (an *fs.PathError) or as a node's answer that reads "op path: reason",
// and still matches what it wraps.
func TestPathErrNamesThePathOnce(t *testing.T) {
	node := func(msg string) error { return fmt.Errorf("%s: %w", msg, fs.ErrPermission) }
	cases := []struct {
		op, p string
		err   error
		want  string
	}{
		{"open", "a/b", &fs.PathError{Op: "open", Path: "a/b", Err: fs.ErrPermission}, "filesync: open a/b: permission denied"},
		{"mkdir", "x/y", node("mkdir x/y"), "filesync: mkdir x/y: permission denied"},
		{"source", "x/y", node("stat x/y"), "filesync: source: stat x/y: permission denied"},
		{"write", "x/y", fs.ErrPermission, "filesync: write x/y: permission denied"},
		{"write", "x", node("write x/yz"), "filesync: write x: write x/yz: permission denied"},
	}
	for _, tc := range cases {
		err := pathErr(tc.op, tc.p, tc.err)
		if err.Error() != tc.want || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("pathErr(%q, %q, %v) = %v, want %s (matching fs.ErrPermission)", tc.op, tc.p, tc.err, err, tc.want)
		}
	}
}
