package filesync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyncSFTPPutAndGet(t *testing.T) {
	remote := newSFTP(t)
	src := t.TempDir()
	writeTree(t, src, sampleTree())
	remoteDir := slash(t.TempDir()) + "/cluster/home/dir"

	// put: local → SFTP.
	st := mustSync(t, LocalFS{}, slash(src), remote, remoteDir, Options{})
	if st.FilesSent != 8 || st.SymlinksSent != 3 {
		t.Errorf("put stats = %+v, want 8 files and 3 symlinks", st)
	}
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), false), snapshot(t, remote, remoteDir, false))
	if st := mustSync(t, LocalFS{}, slash(src), remote, remoteDir, Options{}); st.FilesSent != 0 || st.SymlinksSent != 0 || st.BytesSent != 0 {
		t.Errorf("repeated put stats = %+v, want 0 files sent (mtimes compared to the second)", st)
	}

	// get: SFTP → local.
	back := slash(t.TempDir()) + "/back"
	mustSync(t, remote, remoteDir, LocalFS{}, back, Options{})
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), false), snapshot(t, LocalFS{}, back, false))
	if st := mustSync(t, remote, remoteDir, LocalFS{}, back, Options{}); st.FilesSent != 0 {
		t.Errorf("repeated get sent %d files", st.FilesSent)
	}

	// One change, and a deletion, travel.
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha, edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "a.txt"), time.Now(), baseTime.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "secret")); err != nil {
		t.Fatal(err)
	}
	st = mustSync(t, LocalFS{}, slash(src), remote, remoteDir, Options{Delete: true})
	if st.FilesSent != 1 || st.FilesDeleted != 1 {
		t.Errorf("put after one edit and one removal: %+v, want 1 sent, 1 deleted", st)
	}
	assertSameTree(t, snapshot(t, LocalFS{}, slash(src), false), snapshot(t, remote, remoteDir, false))
	if entries, err := os.ReadDir(filepath.FromSlash(remoteDir)); err != nil || len(entries) != len(sampleTopLevel())-1 {
		t.Errorf("remote top level holds %d entries (%v), want no temporary files left", len(entries), err)
	}
}

// sampleTopLevel counts the top-level names of sampleTree.
func sampleTopLevel() map[string]bool {
	top := map[string]bool{}
	for p := range sampleTree() {
		name, _, _ := strings.Cut(p, "/")
		top[name] = true
	}
	return top
}
