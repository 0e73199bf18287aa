package sshnode

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rhq/rh/internal/lazyre"
)

const pollInterval = 20 * time.Millisecond

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// descendants returns the pids of every process below root, read from /proc.
// sshd forks a child per connection and that child calls setsid, so a process
// group or session kill would miss them; the parent links do not.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may contain spaces; fields
	// after the last ')' are: state ppid ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// signalTree sends sig to root and all its descendants. Descendants are
// collected first so that none is reparented to init before it is seen.
func signalTree(root int, sig syscall.Signal) {
	pids := descendants(root)
	_ = syscall.Kill(root, sig)
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// CleanupLeftovers removes what crashed test processes left behind: sshd
// processes whose config lives in a harness temp dir of a dead process,
// those temp dirs, and network namespaces named rhtest-<deadpid>-*. Start
// calls it; it is exported for a `make clean` style sweep.
func CleanupLeftovers(ctx context.Context) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !strings.HasSuffix(args[0], "sshd") {
			continue
		}
		for i, a := range args {
			if a == "-f" && i+1 < len(args) {
				if owner, ok := ownerPid(filepath.Base(filepath.Dir(args[i+1])), tempPrefix); ok && !pidAlive(owner) {
					signalTree(pid, syscall.SIGKILL)
				}
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, d := range dirs {
		if owner, ok := ownerPid(filepath.Base(d), tempPrefix); ok && !pidAlive(owner) {
			_ = os.RemoveAll(d)
		}
	}
	for _, ns := range listNetns(ctx) {
		if owner, ok := ownerPid(ns, NetnsPrefix); ok && !pidAlive(owner) {
			_ = runIP(ctx, "netns", "del", ns)
		}
	}
	if DefaultUser() == TestUser {
		sweepTestAgents(TestUser, 2*time.Hour)
	}
}

// testAgent matches the agents test gateways place in the node user's
// ~/.rh/bin (agent.InstallDir) under their per-process versions (t<hex> in
// the gateway's tests, test-<hex> in the agent's, e2e-<hex> in e2e and the
// fault suite), and their unfinished uploads.
var testAgent = lazyre.New(`^\.?rhcli-(t[0-9a-f]{10}|test-[0-9a-f]{12}|e2e-[0-9a-f]{10})([.-]|$)`)

// sweepTestAgents removes, from the test user's home only, test agents older
// than age: a test process that was killed never removed its own.
func sweepTestAgents(name string, age time.Duration) {
	u, err := user.Lookup(name)
	if err != nil {
		return
	}
	sweepAgentDir(filepath.Join(u.HomeDir, ".rh", "bin"), age)
}

func sweepAgentDir(dir string, age time.Duration) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !testAgent.MatchString(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ownerPid parses names of the form <prefix><pid>-<rest>.
func ownerPid(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	s, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0
}

// pipeHolders returns the pids, other than this process, that hold an open
// descriptor on the pipe with inode ino. sshd's connection children inherit
// its stderr, so this finds a child forked after a descendants snapshot and
// already reparented to init when its parent died.
func pipeHolders(ino uint64) []int {
	want := "pipe:[" + strconv.FormatUint(ino, 10) + "]"
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir("/proc/" + e.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); err == nil && link == want {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
