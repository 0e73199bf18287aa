package sshgateway_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
)

// fakeTools writes python3 (and, with conda, conda) scripts that print how
// they were called and the requirements file they were given.
func fakeTools(t *testing.T, conda bool) string {
	t.Helper()
	// Where the node's user can run them (t.TempDir is private to root).
	dir := sshnode.UserTempDir(t, sshnode.DefaultUser())
	_ = os.Chmod(dir, 0o755)
	body := `#!/bin/sh
echo "$(basename "$0") $*"
while [ $# -gt 0 ]; do [ "$1" = -r ] && cat "$2"; shift; done
`
	names := []string{"python3"}
	if conda {
		names = append(names, "conda")
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// install --requirements uploads the file and installs it with pip -r (then
// removes it); --conda installs into the environment where conda is, and
// says clearly where it is not; the SDK's InstallWith does the same.
func TestInstallRequirementsAndConda(t *testing.T) {
	e := start(t)
	e.oneNode(t, "inst", sshnode.Options{})
	reqs := filepath.Join(t.TempDir(), "reqs.txt")
	if err := os.WriteFile(reqs, []byte("numpy==2.0\n# a comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := fakeTools(t, false)
	withConda := fakeTools(t, true)
	path := func(dir string) string { return "PATH=" + dir + ":/usr/bin:/bin" }

	code, out, stderr := e.rhcli(t, "install", "inst", "torch", "--requirements", reqs, "--env", path(plain))
	if code != 0 || !strings.Contains(out, "python3 -m pip install -r ") || !strings.Contains(out, "-reqs.txt torch\n") ||
		!strings.Contains(out, "numpy==2.0\n") {
		t.Fatalf("install --requirements = %d %q %q", code, out, stderr)
	}
	uploaded := strings.Fields(strings.SplitN(out, "\n", 2)[0])[5]
	if _, err := os.Stat(uploaded); !os.IsNotExist(err) {
		t.Errorf("the uploaded requirements file %s is still there (%v)", uploaded, err)
	}

	code, out, stderr = e.rhcli(t, "install", "inst", "torch", "--conda", "myenv", "--env", path(plain))
	if code != 127 || !strings.Contains(stderr, "conda is not installed") {
		t.Fatalf("install --conda without conda = %d %q %q", code, out, stderr)
	}
	code, out, stderr = e.rhcli(t, "install", "inst", "--conda", "myenv", "--requirements", reqs, "--env", path(withConda))
	if code != 0 || !strings.HasPrefix(out, "conda run -n myenv python -m pip install -r ") || !strings.Contains(out, "numpy==2.0") {
		t.Fatalf("install --conda = %d %q %q", code, out, stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := e.cl.InstallWith(ctx, "inst", []string{"numpy>=2"}, client.InstallOptions{
		RunOptions: client.RunOptions{Env: map[string]string{"PATH": withConda + ":/usr/bin:/bin"}, Capture: true},
		Conda:      "myenv", Requirements: reqs,
	})
	if err != nil || len(res) != 1 || res[0].ExitCode != 0 || !strings.Contains(res[0].Stdout, "conda run -n myenv python -m pip install -r ") ||
		!strings.Contains(res[0].Stdout, "-reqs.txt numpy>=2\n") {
		t.Fatalf("SDK InstallWith = %+v, %v", res, err)
	}

	// Bad input: named, and nothing runs.
	if _, err := e.cl.InstallWith(ctx, "inst", nil, client.InstallOptions{Requirements: filepath.Join(t.TempDir(), "missing.txt")}); rh.ErrorCode(err) != rh.EINVALID || !strings.Contains(err.Error(), "requirements") {
		t.Errorf("missing requirements file: %v", err)
	}
	if _, err := e.cl.InstallWith(ctx, "inst", []string{"x"}, client.InstallOptions{Conda: "bad;name"}); rh.ErrorCode(err) != rh.EINVALID || !strings.Contains(err.Error(), "conda") {
		t.Errorf("bad conda name: %v", err)
	}
	if code, _, stderr := e.rhcli(t, "install", "inst"); code == 0 || !strings.Contains(stderr, "--requirements") {
		t.Errorf("install with nothing to install = %d %q", code, stderr)
	}
}
