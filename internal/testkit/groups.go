package testkit

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RunningGroup starts a sleeping process in a process group of its own and
// returns the group's id; the process is killed when the test ends.
func RunningGroup(t testing.TB) int {
	t.Helper()
	cmd := startGroup(t, "sleep", "1000")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// ZombieGroup returns the id of a process group whose only member is a
// zombie: a child that exited and that this process reaps only when the test
// ends, as a PID 1 that never reaps (a container's) keeps orphans. kill(-id,
// 0) still succeeds for it.
func ZombieGroup(t testing.TB) int {
	t.Helper()
	cmd := startGroup(t, "true")
	t.Cleanup(func() { _ = cmd.Wait() })
	stat := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat"
	Eventually(t, 30*time.Second, "the process to be a zombie", func() bool {
		b, err := os.ReadFile(stat)
		i := bytes.LastIndexByte(b, ')')
		return err == nil && i > 0 && strings.HasPrefix(string(b[i+1:]), " Z")
	})
	if err := syscall.Kill(-cmd.Process.Pid, 0); err != nil {
		t.Fatalf("kill(-pgid, 0) does not see the zombie (%v): a test of zombies would show nothing", err)
	}
	return cmd.Process.Pid
}

func startGroup(t testing.TB, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}
