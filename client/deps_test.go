package client_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A program using the SDK pays the package initialisation of everything
// the SDK links: the server side (nats-server, the Prometheus client, the
// AWS SDK) must stay out of it.
func TestSDKLinksNoServicePackages(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{"github.com/nats-io/nats-server", "github.com/prometheus", "github.com/aws"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.HasPrefix(pkg, b) {
				t.Errorf("the SDK links %s", pkg)
			}
		}
	}
}
