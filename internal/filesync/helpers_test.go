package filesync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pkg/sftp"
)

// node describes one entry of a test tree: a file (content), a directory
// (dir) or a symlink (link).
type node struct {
	content string
	dir     bool
	link    string
	mode    fs.FileMode // permission bits; 0 means 0644 / 0755
	mtime   time.Time   // zero means baseTime
}

var baseTime = time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)

// writeTree creates nodes under root, parents first, then sets modes and
// times deepest first so writing children does not disturb them.
func writeTree(t *testing.T, root string, tree map[string]node) {
	t.Helper()
	paths := slices.Sorted(maps.Keys(tree))
	for _, p := range paths {
		n := tree[p]
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case n.dir:
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
		case n.link != "":
			if err := os.Symlink(n.link, full); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(full, []byte(n.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range slices.Backward(paths) {
		n := tree[p]
		if n.link != "" {
			continue
		}
		full := filepath.Join(root, filepath.FromSlash(p))
		mode := n.mode
		if mode == 0 {
			mode = 0o644
			if n.dir {
				mode = 0o755
			}
		}
		mt := n.mtime
		if mt.IsZero() {
			mt = baseTime
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// snap is a comparable description of one entry.
type snap struct {
	Mode  fs.FileMode
	Size  int64
	MTime int64 // Unix seconds, or nanoseconds when compared exactly
	Sum   string
	Link  string
}

// snapshot lists the tree at root (and root itself as ".") through fsys.
// With exact, mtimes compare to the nanosecond, otherwise to the second; the
// mtimes of directories are compared too.
func snapshot(t *testing.T, fsys FS, root string, exact bool) map[string]snap {
	t.Helper()
	ctx := context.Background()
	ents, err := fsys.Walk(ctx, root, WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top, err := fsys.Stat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	top.Path = "."
	out := map[string]snap{}
	for _, e := range append(ents, top) {
		s := snap{Mode: e.Mode, Size: e.Size, Link: e.LinkTarget}
		if !e.IsSymlink() {
			s.MTime = e.ModTime.Unix()
			if exact {
				s.MTime = e.ModTime.UnixNano()
			}
		}
		if e.IsRegular() {
			r, err := fsys.Open(ctx, root+"/"+e.Path)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, r); err != nil {
				t.Fatal(err)
			}
			r.Close()
			s.Sum = hex.EncodeToString(h.Sum(nil))
		}
		out[e.Path] = s
	}
	return out
}

func assertSameTree(t *testing.T, a, b map[string]snap) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if bv, ok := b[k]; !ok {
			t.Errorf("%s: missing from destination", k)
		} else if a[k] != bv {
			t.Errorf("%s: source %+v, destination %+v", k, a[k], bv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: extraneous in destination", k)
		}
	}
}

// newSFTP serves the local file system over SFTP through an in-process pipe.
func newSFTP(t *testing.T) *SFTPFS {
	t.Helper()
	cConn, sConn := net.Pipe()
	srv, err := sftp.NewServer(sConn)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	c, err := sftp.NewClientPipe(cConn, cConn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
	})
	return NewSFTPFS(c)
}

func mustSync(t *testing.T, src FS, srcPath string, dst FS, dstPath string, opts Options) Stats {
	t.Helper()
	st, err := Sync(context.Background(), src, srcPath, dst, dstPath, opts)
	if err != nil {
		t.Fatalf("Sync(%s, %s): %v", srcPath, dstPath, err)
	}
	return st
}

func slash(p string) string { return filepath.ToSlash(p) }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func listTree(t *testing.T, root string) []string {
	t.Helper()
	ents, err := LocalFS{}.Walk(context.Background(), slash(root), WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		p := e.Path
		if e.IsDir() {
			p += "/"
		}
		out = append(out, p)
	}
	return out
}

// testDeadline bounds tests that would otherwise hang on a regression; it is
// a safety net, never an expected path.
const testDeadline = 60 * time.Second
