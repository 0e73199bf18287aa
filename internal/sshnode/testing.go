package sshnode

import (
	"context"
	"os"
	"os/user"
	"strconv"
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

// TempDir returns a new directory that the node's user owns, removed when
// the test ends: where a test has a session write what it then checks on
// this machine (loopback nodes share its file system, and t.TempDir is
// private to the user running the test).
func (n *Node) TempDir(t testing.TB) string {
	t.Helper()
	return tempDirOwnedBy(t, n.uid, n.gid)
}

// UserTempDir is Node.TempDir for nodes logging in as name that the test
// did not start itself (a simulator's nodes).
func UserTempDir(t testing.TB, name string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("node temp dir: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return tempDirOwnedBy(t, uid, gid)
}

func tempDirOwnedBy(t testing.TB, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rhtest-node-")
	if err != nil {
		t.Fatalf("node temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("node temp dir: %v", err)
	}
	return dir
}
