package sshnode

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Agents a killed test process placed are swept once old; a fresh one (a
// test running now) and any other file stay.
func TestSweepRemovesOnlyOldTestAgents(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-3 * time.Hour)
	files := map[string]bool{ // name → swept
		"rhcli-t03452922b2":                   true,
		"rhcli-t03452922b2-login":             true,
		".rhcli-t42fb140cc5.tmp-750e74705d3c": true,
		"rhcli-test-0123456789ab":             true,
		"rhcli-e2e-0123456789":                true,
		"rhcli-0.1.0":                         false, // a real build
		"rhcli-trunk":                         false,
	}
	for name := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	fresh := filepath.Join(dir, "rhcli-tffffffffff")
	if err := os.WriteFile(fresh, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	sweepAgentDir(dir, 2*time.Hour)
	for name, swept := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := os.IsNotExist(err); gone != swept {
			t.Errorf("%s: gone %v, want %v", name, gone, swept)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh test agent was swept: %v", err)
	}
}
