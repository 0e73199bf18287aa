package sshx_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/testkit"
)

// A held connection (the node agent's long-lived session) outlives the idle
// timeout while an unheld one beside it is closed; released, it goes too.
func TestPoolKeepsHeldConnectionsPastIdle(t *testing.T) {
	t.Parallel()
	_, held := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	_, idle := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	p := &sshx.Pool{Dialer: newDialer(), IdleTimeout: 200 * time.Millisecond}
	t.Cleanup(func() { p.Close() })
	hc, err := p.Get(ctxT(t, 10*time.Second), held)
	if err != nil {
		t.Fatal(err)
	}
	release := hc.Hold()
	if _, err := poolEcho(ctxT(t, 10*time.Second), p, idle); err != nil {
		t.Fatal(err)
	}
	// The unheld connection closing proves the sweeper ran past the timeout.
	testkit.WaitErr(t, 10*time.Second, "unheld connection closed", func() error {
		if p.Len() != 1 {
			return errors.New("both still pooled")
		}
		return nil
	})
	select {
	case <-hc.Done():
		t.Fatalf("the held connection was closed: %v", hc.Err())
	default:
	}
	if c, err := p.Get(ctxT(t, 10*time.Second), held); err != nil || c != hc {
		t.Fatalf("held target: got another connection (%v)", err)
	}
	release()
	release() // a second release changes nothing
	testkit.WaitErr(t, 10*time.Second, "released connection closed", func() error {
		if p.Len() != 0 {
			return errors.New("still pooled")
		}
		return nil
	})
	<-hc.Done()
}
