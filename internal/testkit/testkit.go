// Package testkit holds what rh's tests share: waiting for a condition with a
// deadline (never a guessed sleep) and a buffer many goroutines may write.
package testkit

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it holds, and fails the
// test with what was awaited when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// WaitErr polls cond every few milliseconds until it returns nil, and fails
// the test with what was awaited and cond's last error when timeout passes
// first: the error says why the wait failed, not only that it did.
func WaitErr(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	var last error
	if !Poll(timeout, func() bool { last = cond(); return last == nil }) {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, last)
	}
}

// Poll reports whether cond came to hold within timeout.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers, for
// capturing logs and command output while they are produced.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFile waits until the file at path holds exactly want.
func WaitFile(t testing.TB, timeout time.Duration, what, path, want string) {
	t.Helper()
	WaitErr(t, timeout, what, func() error {
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			return fmt.Errorf("%s holds %q (%v), want %q", path, b, err, want)
		}
		return nil
	})
}
