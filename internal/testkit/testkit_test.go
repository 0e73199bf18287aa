package testkit_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
)

// recorder is a testing.TB that keeps what Fatalf said instead of failing.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

func TestWaitErr(t *testing.T) {
	calls := 0
	testkit.WaitErr(t, 5*time.Second, "the third call", func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})

	r := &recorder{TB: t}
	testkit.WaitErr(r, 30*time.Millisecond, "a door that stays shut", func() error { return errors.New("door locked") })
	if !strings.Contains(r.fatal, "a door that stays shut") || !strings.Contains(r.fatal, "door locked") {
		t.Fatalf("timeout message %q names neither what was awaited nor the last error", r.fatal)
	}
}

// Servers given ports one after another (client, monitor, routes) must
// never get the same one twice.
func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a := testkit.FreeAddr(t)
		if seen[a] {
			t.Fatalf("FreeAddr returned %s twice", a)
		}
		seen[a] = true
	}
}

// ListensHere sees this process's listener while it is open, and not once
// it is closed.
func TestListensHereSeesOnlyOurOpenListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if !testkit.ListensHere(t, addr) {
		t.Fatalf("our listener on %s is not seen", addr)
	}
	ln.Close()
	if testkit.ListensHere(t, addr) {
		t.Fatalf("our closed listener on %s is still seen", addr)
	}
}
