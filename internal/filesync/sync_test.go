package filesync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleTree exercises modes, times, nesting, empty entries and symlinks.
func sampleTree() map[string]node {
	return map[string]node{
		"a.txt":              {content: "alpha\n"},
		"bin/run.sh":         {content: "#!/bin/sh\necho hi\n", mode: 0o755},
		"secret":             {content: "s3cr3t", mode: 0o600},
		"ro.txt":             {content: "read only", mode: 0o444},
		"empty":              {},
		"emptydir":           {dir: true, mode: 0o700},
		"deep/er/still/f":    {content: strings.Repeat("x", 100_000), mtime: baseTime.Add(-time.Hour)},
		"deep/er":            {dir: true, mode: 0o750, mtime: baseTime.Add(-48 * time.Hour)},
		"link-rel":           {link: "a.txt"},
		"deep/link-up":       {link: "../bin/run.sh"},
		"dangling":           {link: "does/not/exist"},
		"rodir":              {dir: true, mode: 0o555},
		"rodir/inside":       {content: "in a read-only dir"},
		"name with spaces.x": {content: "spaces"},
	}
}

func TestSyncLocalRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out", "dst")
	writeTree(t, src, sampleTree())

	st := mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{})
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), true), snapshot(t, LocalFS{}, slash(dst), true))
	if st.FilesSent != 8 || st.SymlinksSent != 3 || st.FilesSeen != 11 {
		t.Errorf("first sync stats = %+v, want 8 files and 3 symlinks sent of 11", st)
	}

	st = mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{})
	if (st != Stats{FilesSeen: 11, BytesSkipped: st.BytesSkipped}) || st.BytesSkipped == 0 {
		t.Errorf("second sync stats = %+v, want nothing sent", st)
	}

	// One changed file moves, and only it.
	writeTree(t, src, map[string]node{"deep/er/still/f": {content: "changed", mtime: baseTime}})
	var changes []Change
	st = mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{OnChange: func(c Change) { changes = append(changes, c) }})
	if st.FilesSent != 1 || st.BytesSent != int64(len("changed")) {
		t.Errorf("after one change stats = %+v, want 1 file sent", st)
	}
	if len(changes) != 1 || changes[0].Path != "deep/er/still/f" {
		t.Errorf("changes = %+v, want one send of deep/er/still/f", changes)
	}
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), true), snapshot(t, LocalFS{}, slash(dst), true))
}

func TestSyncTrailingSlashIsTheSame(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"d/f": {content: "x"}})
	mustSync(t, LocalFS{}, slash(src)+"/d", LocalFS{}, slash(dst)+"/d", Options{})
	mustSync(t, LocalFS{}, slash(src)+"/d/", LocalFS{}, slash(dst)+"/d/", Options{})
	if got, want := listTree(t, dst), []string{"d/", "d/f"}; !slices.Equal(got, want) {
		t.Errorf("destination = %q, want %q (the directory mirrored, never nested)", got, want)
	}
}

func TestSyncSingleFile(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"f.txt": {content: "one", mode: 0o640}, "l": {link: "f.txt"}, "existing/": {dir: true}})
	writeTree(t, dst, map[string]node{"existing": {dir: true}})
	ctx := context.Background()

	for _, tc := range []struct{ dst, want string }{
		{"renamed.txt", "renamed.txt"},           // a file path names the copy
		{"existing", "existing/f.txt"},           // an existing directory receives it
		{"new/dir/", "new/dir/f.txt"},            // a trailing slash means "into", created if missing
		{"nested/missing/g", "nested/missing/g"}, // missing parents are created
	} {
		st, err := Sync(ctx, LocalFS{}, slash(src)+"/f.txt", LocalFS{}, slash(dst)+"/"+tc.dst, Options{})
		if err != nil {
			t.Fatalf("dst %s: %v", tc.dst, err)
		}
		p := filepath.Join(dst, tc.want)
		if st.FilesSent != 1 || readFile(t, p) != "one" {
			t.Errorf("dst %s: stats %+v, want %s written", tc.dst, st, tc.want)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(baseTime) {
			t.Errorf("dst %s: %v %v, want mode 0640 and mtime kept", tc.dst, fi.Mode(), fi.ModTime())
		}
		if st := mustSync(t, LocalFS{}, slash(src)+"/f.txt", LocalFS{}, slash(dst)+"/"+tc.dst, Options{}); st.FilesSent != 0 {
			t.Errorf("dst %s: repeated sync sent %d files", tc.dst, st.FilesSent)
		}
	}

	mustSync(t, LocalFS{}, slash(src)+"/l", LocalFS{}, slash(dst)+"/l2", Options{})
	if target, err := os.Readlink(filepath.Join(dst, "l2")); err != nil || target != "f.txt" {
		t.Errorf("symlink source copied as %q, %v; want a symlink to f.txt", target, err)
	}
}

func TestSyncMissingSourceNamesPath(t *testing.T) {
	missing := slash(t.TempDir()) + "/no/such/thing"
	for name, fsys := range map[string]FS{"local": LocalFS{}, "sftp": newSFTP(t)} {
		t.Run(name, func(t *testing.T) {
			_, err := Sync(context.Background(), fsys, missing, LocalFS{}, slash(t.TempDir()), Options{})
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
				t.Errorf("err = %v, want a not-exist error naming %s", err, missing)
			}
		})
	}
}

func TestSyncDestinationNotADirectory(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, dst, map[string]node{"file": {content: "x"}})
	_, err := Sync(context.Background(), LocalFS{}, slash(src), LocalFS{}, slash(dst)+"/file", Options{})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("err = %v, want destination-not-a-directory", err)
	}
}

func TestSyncDelete(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"keep": {content: "k"}, "sub/keep": {content: "k"}})
	writeTree(t, dst, map[string]node{
		"keep": {content: "k"}, "sub/keep": {content: "k"},
		"stale": {content: "s"}, "sub/stale": {content: "s"}, "olddir/x/y": {content: "y"},
		"oldlink": {link: "keep"}, "notes.log": {content: "excluded, so protected"},
	})
	opts := Options{Exclude: []string{"*.log"}}

	st := mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), opts)
	if st.FilesDeleted != 0 || !exists(filepath.Join(dst, "stale")) {
		t.Fatalf("without Delete, stats %+v; nothing may be deleted", st)
	}
	opts.Delete = true
	st = mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), opts)
	if got, want := listTree(t, dst), []string{"keep", "notes.log", "sub/", "sub/keep"}; !slices.Equal(got, want) {
		t.Errorf("after Delete destination = %q, want %q", got, want)
	}
	if st.FilesDeleted != 6 { // stale, sub/stale, olddir/x/y, olddir/x, olddir, oldlink
		t.Errorf("FilesDeleted = %d, want 6", st.FilesDeleted)
	}
}

func TestSyncTypeChanges(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"was-dir": {content: "now a file"}, "was-file/x": {content: "now a dir"}, "was-link": {content: "file"}})
	writeTree(t, dst, map[string]node{"was-dir/a/b": {content: "old"}, "was-file": {content: "old"}, "was-link": {link: "was-file"}})
	mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{})
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), true), snapshot(t, LocalFS{}, slash(dst), true))
}

func TestSyncExcludesAndFilters(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]node{
		"main.go":              {content: "package main"},
		"debug.log":            {content: "x"},
		"keep.log":             {content: "x"},
		"build/out.bin":        {content: "x"},
		"docs/internal/a.md":   {content: "x"},
		"docs/public/internal": {content: "a file named internal below another dir"},
		"cache.tmp":            {content: "x"},
		"important.tmp":        {content: "x"},
		"vendor/lib/x.go":      {content: "x"},
	})
	opts := Options{
		Filter:  []string{"+ important.tmp", "- *.tmp", "- vendor/"},
		Exclude: []string{"*.log", "!keep.log", "build/", "docs/internal"},
	}
	dst := t.TempDir()
	mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), opts)
	want := []string{"docs/", "docs/public/", "docs/public/internal", "important.tmp", "keep.log", "main.go"}
	if got := listTree(t, dst); !slices.Equal(got, want) {
		t.Errorf("destination = %q, want %q", got, want)
	}
}

func TestSyncGitIgnore(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]node{
		".gitignore":         {content: "# top\n*.o\n/top-only\nnode_modules/\n!keep.o\n"},
		"a.o":                {content: "x"},
		"keep.o":             {content: "x"},
		"top-only":           {content: "x"},
		"sub/top-only":       {content: "anchored pattern does not apply here"},
		"sub/.gitignore":     {content: "*.txt\n!important.txt\n"},
		"sub/b.o":            {content: "x"},
		"sub/notes.txt":      {content: "x"},
		"sub/important.txt":  {content: "x"},
		"other/notes.txt":    {content: "sub's rules do not apply here"},
		"node_modules/pkg/x": {content: "x"},
	})
	dst := t.TempDir()
	mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{GitIgnore: true})
	want := []string{".gitignore", "keep.o", "other/", "other/notes.txt", "sub/", "sub/.gitignore", "sub/important.txt", "sub/top-only"}
	if got := listTree(t, dst); !slices.Equal(got, want) {
		t.Errorf("destination = %q, want %q", got, want)
	}
	// The same through the rsync spelling, over SFTP.
	dst2 := t.TempDir()
	mustSync(t, newSFTP(t), slash(src), LocalFS{}, slash(dst2), Options{Filter: []string{"dir-merge,- .gitignore"}})
	if got := listTree(t, dst2); !slices.Equal(got, want) {
		t.Errorf("over SFTP destination = %q, want %q", got, want)
	}
}

func TestSyncDryRun(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"a": {content: "aa"}, "d/b": {content: "bbb"}, "l": {link: "a"}})
	writeTree(t, dst, map[string]node{"extra": {content: "e"}})
	before := snapshot(t, LocalFS{}, slash(dst), true)
	var ops []string
	st := mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{DryRun: true, Delete: true,
		OnChange: func(c Change) { ops = append(ops, string(c.Op)+" "+c.Path) }})
	assertSameTree(t, before, snapshot(t, LocalFS{}, slash(dst), true))
	want := Stats{FilesSeen: 3, FilesSent: 2, SymlinksSent: 1, DirsCreated: 1, FilesDeleted: 1, BytesSent: 5}
	if st != want {
		t.Errorf("dry-run stats = %+v, want %+v", st, want)
	}
	slices.Sort(ops)
	if want := []string{"delete extra", "mkdir d", "send a", "send d/b", "symlink l"}; !slices.Equal(ops, want) {
		t.Errorf("dry-run changes = %q, want %q", ops, want)
	}
}

func TestSyncChecksum(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"f": {content: "new!"}})
	writeTree(t, dst, map[string]node{"f": {content: "old!"}}) // same size, same mtime
	for _, fsys := range []FS{newSFTP(t), LocalFS{}} {         // without and with Hasher
		if st := mustSync(t, fsys, slash(src), LocalFS{}, slash(dst), Options{}); st.FilesSent != 0 {
			t.Fatalf("size+mtime comparison sent %d files", st.FilesSent)
		}
		if st := mustSync(t, fsys, slash(src), LocalFS{}, slash(dst), Options{Checksum: true, DryRun: true}); st.FilesSent != 1 {
			t.Fatalf("checksum comparison sent %d files, want 1", st.FilesSent)
		}
	}
	mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{Checksum: true})
	if got := readFile(t, filepath.Join(dst, "f")); got != "new!" {
		t.Errorf("content = %q after checksum sync", got)
	}
	if st := mustSync(t, LocalFS{}, slash(src), LocalFS{}, slash(dst), Options{Checksum: true}); st.FilesSent != 0 {
		t.Errorf("repeated checksum sync sent %d files", st.FilesSent)
	}
}

func TestSyncBadFilterRule(t *testing.T) {
	_, err := Sync(context.Background(), LocalFS{}, slash(t.TempDir()), LocalFS{}, slash(t.TempDir()), Options{Filter: []string{"merge rules.txt"}})
	if err == nil || !strings.Contains(err.Error(), "merge rules.txt") {
		t.Errorf("err = %v, want an error naming the rule", err)
	}
}

func TestSyncCanceled(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]node{"a": {content: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Sync(ctx, LocalFS{}, slash(src), LocalFS{}, slash(t.TempDir()), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
