package sshnode

import (
	"context"
	"testing"
	"time"
)

// StartT starts a node for a test and registers its Close (and, when the
// test failed, a dump of sshd's log) with t.Cleanup. It fails the test
// immediately if the node cannot start.
func StartT(t testing.TB, opts Options) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.ClearStaleShellLock = true
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start sshd node: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log of %s:\n%s", n.HostPort(), n.Log())
		}
		if err := n.Close(); err != nil {
			t.Errorf("close node %s: %v", n.HostPort(), err)
		}
	})
	return n
}
