package sshnode

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
)

// A rehash lock left by a killed login is removed while a node lives, so
// later logins do not wait a minute for it.
func TestStaleShellLockIsRemoved(t *testing.T) {
	home := t.TempDir()
	shims := filepath.Join(home, ".pyenv", "shims")
	if err := os.MkdirAll(shims, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(shims, ".pyenv-shim")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	stop := watchShellLock(home)
	defer stop()
	testkit.Eventually(t, 30*time.Second, "the stale lock to be removed", func() bool {
		_, err := os.Stat(lock)
		return os.IsNotExist(err)
	})
}
