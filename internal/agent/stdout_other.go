//go:build !linux

package agent

import "os"

// protectStdout keeps fd 1 as is where dup3 is not available.
func protectStdout() (*os.File, error) { return os.Stdout, nil }
