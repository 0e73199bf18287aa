package agent

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
)

// TestNoGoroutineLeak: connections that come and go (the gateway restarts
// agents) leave nothing running on either side.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 10 {
		c, done := pipeAgent(t, ServeOptions{})
		var out bytes.Buffer
		if _, err := c.Run(ctxT(t, 10*time.Second), RunRequest{Shell: "echo hi", Stdin: bytes.NewReader([]byte("x")), Stdout: &out}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.FS().Stat(ctxT(t, 10*time.Second), "/"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		<-done.done
	}
	testkit.WaitErr(t, 5*time.Second, "goroutines back to baseline", func() error {
		if n := runtime.NumGoroutine(); n > before+2 {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}
