package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/testkit"
)

// A hangup (closed terminal) must not leave the key file behind: rhcli
// removes it at once and passes the signal on to ssh.
func TestSSHKeyFileRemovedOnHangup(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			bin := t.TempDir()
			seen := filepath.Join(t.TempDir(), "args")
			// A stand-in for OpenSSH: it notes its arguments and waits.
			script := "#!/bin/sh\necho \"$@\" > " + seen + ".tmp && mv " + seen + ".tmp " + seen + "\nexec sleep 30\n"
			if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			a := &app{}
			info := &api.ConnectReply{Host: "h", Port: 22, User: "u", PrivateKey: "not a real key", InsecureIgnoreHostKey: true}
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				code, err := a.execSSH(context.Background(), info, nil, nil)
				done <- result{code, err}
			}()
			var key string
			testkit.Eventually(t, 10*time.Second, "ssh started", func() bool {
				b, err := os.ReadFile(seen)
				if err != nil {
					return false
				}
				f := strings.Fields(string(b))
				for i := range f {
					if f[i] == "-i" && i+1 < len(f) {
						key = f[i+1]
					}
				}
				return key != ""
			})
			if _, err := os.Stat(key); err != nil {
				t.Fatalf("key file: %v", err)
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				if r.err != nil || r.code != 128+int(sig) {
					t.Fatalf("execSSH = %d, %v; want %d", r.code, r.err, 128+int(sig))
				}
			case <-time.After(15 * time.Second):
				t.Fatal("execSSH did not return after the signal")
			}
			if _, err := os.Stat(filepath.Dir(key)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the key directory is still there: %v", err)
			}
		})
	}
}
