package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Every rhcli start, `rhcli run` included, runs the package initialisation
// of everything the binary links: packages that are costly to initialise
// must not be linked at all. The SageMaker SDK's alone cost 15-40 ms; the
// worker talks to SageMaker through its own small client instead.
func TestRhcliLinksNoCostlyInit(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{"github.com/aws/aws-sdk-go-v2/service/sagemaker"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if pkg == b || strings.HasPrefix(pkg, b+"/") {
				t.Errorf("rhcli links %s", pkg)
			}
		}
	}
}
