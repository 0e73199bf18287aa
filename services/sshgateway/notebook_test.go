package sshgateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
)

// rhcli notebook's Jupyter runs under the node agent where there is one:
// the node's live status lists it as a run while it serves, its URL works
// through the tunnel, and ending the notebook ends that run on the node.
// (client's notebook tests cover the plain-session fallback.)
func TestNotebookRunsUnderTheAgent(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("jupyter-notebook"); err != nil {
		if exec.Command("python3", "-m", "jupyter", "notebook", "--version").Run() != nil {
			t.Fatal("Jupyter is missing: run scripts/install-test-deps.sh (Debian: apt-get install jupyter-notebook)")
		}
	}
	e := start(t)
	n := e.oneNode(t, "nb", sshnode.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	remote := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Minute)
	defer scancel()
	nb, err := e.cl.Notebook(sctx, "nb", client.NotebookOptions{LocalAddr: "127.0.0.1:0", RemotePort: remote, Dir: n.TempDir(t)})
	if err != nil {
		t.Fatalf("notebook: %v", err)
	}
	live := e.live(t, "nb")
	if live.Agent != api.AgentRunning || !runsJupyter(live.Runs) {
		t.Fatalf("while the notebook serves, the node's agent is %q with runs %+v; want Jupyter among the agent's runs", live.Agent, live.Runs)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(nb.URL)
	if err != nil {
		t.Fatalf("GET %s: %v", nb.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", nb.URL, resp.Status)
	}
	cancel()
	if err := nb.Wait(); err != nil {
		t.Fatalf("Wait after cancel = %v, want nil", err)
	}
	testkit.WaitErr(t, time.Minute, "Jupyter's run to end on the node", func() error {
		if l := e.live(t, "nb"); runsJupyter(l.Runs) {
			return fmt.Errorf("the agent still runs %+v", l.Runs)
		}
		if testkit.Listens(net.JoinHostPort("127.0.0.1", fmt.Sprint(nb.RemotePort))) {
			return errors.New("Jupyter's port still answers")
		}
		return nil
	})
}

func runsJupyter(runs []api.RunLive) bool {
	for _, r := range runs {
		if strings.Contains(r.Command, "jupyter") || strings.Contains(r.Command, "notebook") {
			return true
		}
	}
	return false
}
