package sshgateway_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/services/sshgateway"
)

// coldUser logs in to a node whose home is read-only, so no agent can be
// placed there.
const coldUser = "rhcoldtest"

// The pool's idle close does not kill a node's agent while its cluster is
// Up: beside it, a node without the agent (a read-only home) has its idle
// connection closed, which proves the idle time passed; the agent is the
// same process after, with no restart.
func TestIdleCloseKeepsAgentsWarm(t *testing.T) {
	e := startWith(t, func(c *sshgateway.Config) {
		c.IdleTimeout = 300 * time.Millisecond
		c.AgentVersion = testAgentVersion + "-warm"
	})
	e.oneNode(t, "warm", sshnode.Options{})
	// Another user than the warm node's, so its read-only home cannot hold
	// the agent the warm node placed in the shared one. (Its password is
	// never used: the node takes the key.)
	ctx0, cancel0 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel0()
	if err := sshnode.EnsureUser(ctx0, coldUser, "unused-"+strconv.Itoa(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	e.oneNode(t, "cold", sshnode.Options{User: coldUser, ReadOnlyHome: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{"warm", "cold"} {
		if res, err := e.cl.Run(ctx, name, "true", client.RunOptions{}); err != nil || res[0].ExitCode != 0 {
			t.Fatalf("run on %s: %+v, %v", name, res, err)
		}
	}
	before := e.live(t, "warm")
	if before.Agent != api.AgentRunning || before.AgentPID == 0 {
		t.Fatalf("warm node: %+v", before)
	}
	if cold := e.live(t, "cold"); cold.Agent != api.AgentUnavailable {
		t.Fatalf("cold node: %+v", cold)
	}
	eventually(t, time.Minute, "the cold node's idle connection closed", func() error {
		if n := gauge(t, e.prom, "rh_ssh_sessions", "conn"); n != 1 {
			return fmt.Errorf("%v connections open, want the warm node's only", n)
		}
		return nil
	})
	after := e.live(t, "warm")
	if after.Agent != api.AgentRunning || after.AgentPID != before.AgentPID || after.AgentRestarts != before.AgentRestarts {
		t.Fatalf("the agent did not stay: before %+v, after %+v", before, after)
	}
}
