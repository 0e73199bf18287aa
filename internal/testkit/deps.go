package testkit

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// NoLinkedPackages fails the test for every package the package in the
// current directory links (directly or not) whose import path starts with
// one of banned. Go runs the initialisation of every linked package at each
// start, so costly ones must not be linked at all.
func NoLinkedPackages(t *testing.T, banned ...string) {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if pkg == b || strings.HasPrefix(pkg, strings.TrimSuffix(b, "/")+"/") {
				t.Errorf("links %s", pkg)
			}
		}
	}
}
