package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
)

// Jupyter (Debian's jupyter-notebook package, a test prerequisite) starts
// on the node, the URL with its token works through the tunnel, and
// ending the context stops the Jupyter process on the node.
func TestNotebookServesJupyterAndStopsIt(t *testing.T) {
	if _, err := exec.LookPath("jupyter-notebook"); err != nil {
		if exec.Command("python3", "-m", "jupyter", "notebook", "--version").Run() != nil {
			t.Fatal("Jupyter is missing: run scripts/install-test-deps.sh (Debian: apt-get install jupyter-notebook)")
		}
	}
	cl, node := byoCluster(t, sshnode.Options{})
	remote := testkit.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Minute)
	defer scancel()
	var log testkit.SyncBuffer
	nb, err := cl.Notebook(sctx, "box", client.NotebookOptions{LocalAddr: "127.0.0.1:0", RemotePort: remote, Dir: node.TempDir(t), Log: &log})
	if err != nil {
		t.Fatalf("notebook: %v", err)
	}
	if nb.Token == "" || !strings.Contains(nb.URL, "token="+nb.Token) || !strings.HasPrefix(nb.URL, nb.Tunnel.URL()) {
		t.Fatalf("notebook URL %q, token %q", nb.URL, nb.Token)
	}
	if nb.RemotePort != remote {
		t.Logf("Jupyter took port %d instead of %d (busy)", nb.RemotePort, remote)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	status := func(token string) (int, error) {
		u := nb.Tunnel.URL() + "/api/status"
		if token != "" {
			u += "?token=" + token
		}
		resp, err := hc.Get(u)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var v map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				return 0, fmt.Errorf("decode /api/status: %w", err)
			}
			if _, ok := v["started"]; !ok {
				return 0, fmt.Errorf("/api/status: %v", v)
			}
		}
		return resp.StatusCode, nil
	}
	if code, err := status(nb.Token); err != nil || code != http.StatusOK {
		t.Fatalf("Jupyter's status with the token: %d, %v\n%s", code, err, log.String())
	}
	if code, err := status(""); err != nil || code != http.StatusForbidden {
		t.Fatalf("Jupyter's status without the token: %d, %v; want 403", code, err)
	}
	resp, err := hc.Get(nb.URL)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", nb.URL, resp, err)
	}
	resp.Body.Close()

	cancel()
	if err := nb.Wait(); err != nil {
		t.Fatalf("Wait after cancel = %v, want nil", err)
	}
	// Jupyter is gone from the node (the node is this machine): nothing
	// listens on its port and no process has its command line.
	portArg := "--port=" + strconv.Itoa(remote)
	testkit.WaitErr(t, time.Minute, "Jupyter to end on the node", func() error {
		if testkit.Listens(net.JoinHostPort("127.0.0.1", strconv.Itoa(nb.RemotePort))) {
			return errors.New("Jupyter's port still answers")
		}
		if out, err := exec.Command("pgrep", "-f", "--", portArg).Output(); err == nil {
			return fmt.Errorf("processes with %s still run: %s", portArg, out)
		}
		return nil
	})
	if testkit.ListensHere(t, nb.Addr.String()) {
		t.Fatal("the tunnel's local port still listens")
	}
}

// Where Jupyter is missing, rh installs it with pip; where pip cannot reach
// a package index, the error says so and how to install it instead.
func TestNotebookSaysWhenJupyterCannotBeInstalled(t *testing.T) {
	// A python3 without Jupyter (the real one, whose Jupyter module is
	// hidden, so pip still runs), and no jupyter-notebook on the PATH.
	// The python3 the node's user finds (not this process's, which may be
	// a pyenv under root's home).
	python := ""
	for _, dir := range []string{"/usr/local/bin", "/usr/bin", "/bin"} {
		if _, err := os.Stat(filepath.Join(dir, "python3")); err == nil {
			python = filepath.Join(dir, "python3")
			break
		}
	}
	if python == "" {
		t.Fatal("no python3 for the node's user: run scripts/install-test-deps.sh")
	}
	cl, node := byoCluster(t, sshnode.Options{})
	bin := node.TempDir(t)
	wrapper := "#!/bin/sh\nif [ \"$1\" = -m ] && [ \"$2\" = jupyter ]; then echo \"No module named jupyter\" >&2; exit 1; fi\nexec " + python + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "python3"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log testkit.SyncBuffer
	nb, err := cl.Notebook(ctx, "box", client.NotebookOptions{
		LocalAddr: "127.0.0.1:0", RemotePort: testkit.FreePort(t), Log: &log,
		Env: map[string]string{
			"PATH": bin,
			// A Python pip may install into (Debian's refuses, PEP 668) and
			// that has no notebook package (Debian's Jupyter is hidden),
			// and an index nothing answers at, as offline: pip fails at once.
			"PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_IGNORE_INSTALLED": "1",
			"PIP_INDEX_URL": "http://127.0.0.1:1/simple", "PIP_FIND_LINKS": node.TempDir(t), "PIP_DEFAULT_TIMEOUT": "5",
		},
	})
	if !errors.Is(err, client.ErrNotebookNotStarted) {
		if nb != nil {
			nb.Close()
		}
		t.Fatalf("notebook without Jupyter: %v, want ErrNotebookNotStarted; output:\n%s", err, log.String())
	}
	t.Logf("the error a user sees: %v", err)
	for _, want := range []string{"installing it: python3 -m pip install --user notebook", "could not install Jupyter", "package index", "apt-get install jupyter-notebook"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error should say %q:\n%v", want, err)
		}
	}
}
