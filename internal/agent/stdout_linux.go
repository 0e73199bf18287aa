package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// protectStdout returns a private duplicate of fd 1 for the protocol and
// points fd 1 at stderr.
func protectStdout() (*os.File, error) {
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup stdout: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("redirect stdout: %w", err)
	}
	return os.NewFile(uintptr(fd), "agent-protocol"), nil
}
