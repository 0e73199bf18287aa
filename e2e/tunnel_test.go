package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/rhq/rh/internal/proctest"
	"github.com/rhq/rh/internal/testkit"
)

var tunnelURL = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)

// rhcli tunnel reaches a port on the nodes of every cloud kind through
// their own routes (SageMaker's SSM proxy command, SkyPilot's nodes), as
// its own process, and SIGINT and SIGTERM end it cleanly.
func TestTunnelToEveryKindThroughRhcli(t *testing.T) {
	url := startSimServe(t)
	// Simulated nodes are sshd processes on this machine: a server on its
	// loopback is a server on the node.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "model server") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	creates := map[string][]string{
		"sm": {"--instance-type", "ml.m5.large", "--role", "E2ERole"},
		"od": {"--instance-type", "m5.xlarge", "--provider", "aws"},
	}
	for _, name := range []string{"sm", "od"} {
		args := append([]string{"cluster", "create", name}, creates[name]...)
		if code, _, stderr := rhcli(t, url, append(args, "--wait")...); code != 0 {
			t.Fatalf("create %s: exit %d: %s", name, code, stderr)
		}
	}
	// OpenSSH pins the SSM target's host key by the name it looks it up by.
	if code, out, stderr := rhcli(t, url, "ssh", "sm", "--", "echo", "via-openssh"); code != 0 || out != "via-openssh\n" {
		t.Fatalf("rhcli ssh sm: exit %d, %q, %q", code, out, stderr)
	}
	for name, sig := range map[string]syscall.Signal{"sm": syscall.SIGINT, "od": syscall.SIGTERM} {
		t.Run(name, func(t *testing.T) {
			cmd := bin.Command(context.Background(), url, "tunnel", name, port+":0")
			c := proctest.Start(t, "rhcli tunnel "+name, cmd, proctest.KillAtCleanup)
			testkit.Eventually(t, 2*time.Minute, "the tunnel's URL", func() bool {
				if err, over := c.Wait(0); over {
					t.Fatalf("the tunnel ended: %v", err)
				}
				return tunnelURL.MatchString(c.Log.String())
			})
			local := tunnelURL.FindString(c.Log.String())
			resp, err := http.Get(local)
			if err != nil {
				t.Fatalf("GET %s: %v", local, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "model server" {
				t.Fatalf("GET through the tunnel to %s = %q", name, body)
			}
			_ = cmd.Process.Signal(sig)
			err, over := c.Wait(30 * time.Second)
			if !over {
				t.Fatalf("the tunnel did not end on %s", sig)
			}
			if err != nil {
				t.Fatalf("tunnel after %s: %v", sig, err)
			}
		})
	}
}
