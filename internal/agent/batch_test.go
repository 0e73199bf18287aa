package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/internal/filesync"
)

func TestWriteFilesWritesABatchWithModesAndTimes(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx := ctxT(t, 30*time.Second)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var files []filesync.SmallFile
	for i := range 200 {
		files = append(files, filesync.SmallFile{Path: fmt.Sprintf("sub/f%03d", i), Perm: 0o600 | os.FileMode(i%2)*0o100,
			ModTime: baseTime.Add(time.Duration(i) * time.Second), Data: []byte(strings.Repeat("z", i*40))})
	}
	files = append(files, filesync.SmallFile{Path: "empty", Perm: 0o644, ModTime: baseTime})
	n, err := c.FS().WriteFiles(ctx, filepath.ToSlash(root), files)
	if err != nil || n != len(files) {
		t.Fatalf("WriteFiles = %d, %v", n, err)
	}
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != string(f.Data) || fi.Mode().Perm() != f.Perm || !fi.ModTime().Equal(f.ModTime) {
			t.Fatalf("%s: %d bytes, mode %v, mtime %v; want %d, %v, %v", f.Path, len(b), fi.Mode(), fi.ModTime(), len(f.Data), f.Perm, f.ModTime)
		}
	}
}

// The agent checks a batch whole before writing: an entry through a symlink
// refuses the batch, naming the entry, and nothing is written.
func TestWriteFilesRefusesAnEscapingEntryOnTheNode(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	ctx := ctxT(t, 30*time.Second)
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "lnk")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"lnk/authorized_keys", "../escaped", "/etc/rh-test-abs"} {
		files := []filesync.SmallFile{{Path: "good", Perm: 0o644, Data: []byte("g")}, {Path: bad, Perm: 0o644, Data: []byte("x")}}
		n, err := c.FS().WriteFiles(ctx, filepath.ToSlash(root), files)
		var be *filesync.BatchError
		if n != 0 || !errors.As(err, &be) || be.Index != 1 || be.Path != bad || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s: WriteFiles = %d, %v; want 0 and an error naming the entry", bad, n, err)
		}
		if bad != "/etc/rh-test-abs" && !errors.Is(err, filesync.ErrEscape) {
			t.Errorf("%s: error %v does not match ErrEscape", bad, err)
		}
		for _, p := range []string{filepath.Join(root, "good"), filepath.Join(outside, "authorized_keys"), filepath.Join(base, "escaped"), "/etc/rh-test-abs"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s: %s was written", bad, p)
			}
		}
	}
}
