package sshx_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/testkit"
)

func TestRunExitCodesAndStderr(t *testing.T) {
	t.Parallel()
	_, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	tests := []struct {
		name, cmd   string
		code        int
		out, errOut string
	}{
		{"zero", "echo out; echo err >&2", 0, "out\n", "err\n"},
		{"non-zero exit is not an error", "exit 3", 3, "", ""},
		{"killed by signal reports 128+n", "kill -KILL $$", 137, "", ""},
		{"terminated", "kill -TERM $$", 143, "", ""},
		{"stdin is empty when not given", "cat; echo done", 0, "done\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code, err := sshx.Run(ctxT(t, 10*time.Second), c, sshx.RunRequest{Command: tt.cmd, Stdout: &out, Stderr: &errOut})
			if err != nil || code != tt.code || out.String() != tt.out || errOut.String() != tt.errOut {
				t.Fatalf("code %d err %v stdout %q stderr %q; want %d %q %q", code, err, out.String(), errOut.String(), tt.code, tt.out, tt.errOut)
			}
		})
	}
}

func TestRunLargeBinaryIntact(t *testing.T) {
	t.Parallel()
	_, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	in := make([]byte, 10<<20)
	rand.Read(in)
	for i := 0; i < 256; i++ { // every byte value, including NUL and CR
		in[i] = byte(i)
	}
	want := sha256.Sum256(in)
	var out bytes.Buffer
	code, err := sshx.Run(ctxT(t, 60*time.Second), c, sshx.RunRequest{Command: "cat", Stdin: bytes.NewReader(in), Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("cat: %d %v", code, err)
	}
	if out.Len() != len(in) || sha256.Sum256(out.Bytes()) != want {
		t.Fatalf("stdout: %d bytes, checksum mismatch", out.Len())
	}
	// Remote-generated output on stderr, past the process-group marker.
	var errOut bytes.Buffer
	code, err = sshx.Run(ctxT(t, 60*time.Second), c, sshx.RunRequest{Command: "head -c 3000000 /dev/zero | tr '\\0' 'x' >&2", Stderr: &errOut})
	if err != nil || code != 0 || errOut.Len() != 3000000 || strings.Trim(errOut.String(), "x") != "" {
		t.Fatalf("stderr: code %d err %v len %d", code, err, errOut.Len())
	}
}

func TestRunEnvAndDirQuoting(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	env := map[string]string{
		"A_QUOTE":  `it's "quoted"`,
		"B_SUBST":  "$(touch /tmp/rh-pwned) `id` $HOME ${PATH}",
		"C_LINES":  "line1\nline2\r\n",
		"D_BACK":   `back\slash \\ \n`,
		"E_EMPTY":  "",
		"F_GLOB":   "* ? [a-z]",
		"G_UTF8":   "héllo – 世界 🚀",
		"H_SEMI":   "; exit 7; '",
		"I_SPACES": "  lead and trail  \t",
	}
	// The node is this machine, so a local directory is on the node.
	base, err := os.MkdirTemp("", "rh-sshx-dir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755) // the login user is not root
	dir := filepath.Join(base, "it's a \"dir\" $(x)")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = n
	var cmd strings.Builder
	cmd.WriteString("printf '%s\\0' \"$PWD\"")
	for _, k := range []string{"A_QUOTE", "B_SUBST", "C_LINES", "D_BACK", "E_EMPTY", "F_GLOB", "G_UTF8", "H_SEMI", "I_SPACES"} {
		cmd.WriteString(` "$` + k + `"`)
	}
	var out bytes.Buffer
	code, err := sshx.Run(ctxT(t, 10*time.Second), c, sshx.RunRequest{Command: cmd.String(), Env: env, Dir: string(dir), Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v", code, err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00")
	want := []string{string(dir), env["A_QUOTE"], env["B_SUBST"], env["C_LINES"], env["D_BACK"], "", env["F_GLOB"], env["G_UTF8"], env["H_SEMI"], env["I_SPACES"]}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if _, err := sshx.Run(ctxT(t, 10*time.Second), c, sshx.RunRequest{Command: "true", Env: map[string]string{"BAD NAME": "x"}}); err == nil {
		t.Fatal("invalid env name accepted")
	}
	code, _ = sshx.Run(ctxT(t, 10*time.Second), c, sshx.RunRequest{Command: "true", Dir: filepath.Join(base, "missing")})
	if code != 1 {
		t.Fatalf("missing dir: code %d, want 1", code)
	}
}

// pidWriter collects stdout and signals when n lines have arrived.
type pidWriter struct {
	testkit.SyncBuffer
	lines int
	once  sync.Once
	ready chan struct{}
}

func (w *pidWriter) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if strings.Count(w.String(), "\n") >= w.lines {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

func TestRunCancelKillsRemoteProcessGroup(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	for _, tt := range []struct {
		name   string
		cancel func(context.Context) (context.Context, func())
		want   error
	}{
		{"cancel", func(ctx context.Context) (context.Context, func()) { return context.WithCancel(ctx) }, context.Canceled},
		// Long enough for the command to start on a loaded machine.
		{"deadline", func(ctx context.Context) (context.Context, func()) { return context.WithTimeout(ctx, 8*time.Second) }, sshx.ErrTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.cancel(context.Background())
			defer cancel()
			out := &pidWriter{lines: 2, ready: make(chan struct{})}
			// A background child and a foreground one: both must die.
			cmd := "sleep 1000 & echo $!; sh -c 'echo $$; exec sleep 1001'"
			done := make(chan error, 1)
			go func() {
				_, err := sshx.Run(ctx, c, sshx.RunRequest{Command: cmd, Stdout: out})
				done <- err
			}()
			select {
			case <-out.ready:
			case <-time.After(10 * time.Second):
				t.Fatal("command did not start")
			}
			pids := strings.Fields(out.String())
			if tt.want != sshx.ErrTimeout {
				cancel()
			}
			if err := <-done; !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, p := range pids {
				if _, err := strconv.Atoi(p); err != nil {
					t.Fatalf("bad pid %q", p)
				}
				testkit.WaitErr(t, 5*time.Second, "remote process "+p+" gone", func() error {
					if out, err := n.Exec(context.Background(), "kill -0 "+p); err == nil {
						return fmt.Errorf("pid %s still alive %s", p, out)
					}
					return nil
				})
			}
		})
	}
}

// Without the agent too, a cancelled command gets SIGTERM first and may
// save its work before it ends.
func TestRunCancelTermsFirst(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	saved := filepath.Join(n.TempDir(t), "saved")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &pidWriter{lines: 1, ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := sshx.Run(ctx, c, sshx.RunRequest{Command: `trap 'echo checkpoint > ` + saved + `; exit 0' TERM; echo $$; while :; do sleep 0.05; done`, Stdout: out})
		done <- err
	}()
	select {
	case <-out.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("command did not start")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	testkit.WaitFile(t, 10*time.Second, "the command's clean-up", saved, "checkpoint\n")
}

func TestRunDeadlineIsTimeout(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	// A unique argument, so pgrep finds this sleep and nothing else.
	arg := fmt.Sprintf("1000.%d", time.Now().UnixNano()%1e9)
	marker := "[s]leep " + arg
	code, err := sshx.Run(ctx, c, sshx.RunRequest{Command: "exec sleep " + arg})
	if code != -1 || !errors.Is(err, sshx.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("code %d err %v, want -1 and ErrTimeout", code, err)
	}
	testkit.WaitErr(t, 5*time.Second, "timed-out command gone", func() error {
		if out, err := n.Exec(context.Background(), "pgrep -f '"+marker+"'"); err == nil {
			return fmt.Errorf("still running: %s", out)
		}
		return nil
	})
}

func TestFacts(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	f, err := sshx.GetFacts(ctxT(t, 10*time.Second), c)
	if err != nil {
		t.Fatal(err)
	}
	kernel, _ := n.Exec(context.Background(), "uname -r")
	if f.OS != "linux" || f.Kernel != strings.TrimSpace(string(kernel)) || f.Arch == "" || f.CPUs < 1 || f.MemoryBytes < 1<<20 {
		t.Fatalf("facts %+v", f)
	}
}

// Env values must not be on the remote command line, which any user of the
// node can read (ps, /proc/PID/cmdline); the command's stdin still arrives.
func TestRunEnvNotOnCommandLine(t *testing.T) {
	t.Parallel()
	_, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	c := dial(t, newDialer(), tg)
	const secret = "s3cr3t-token-value"
	var out bytes.Buffer
	code, err := sshx.Run(ctxT(t, 10*time.Second), c, sshx.RunRequest{
		Command: `tr '\0' ' ' < /proc/$$/cmdline; echo; echo "env=$TOKEN"; cat`,
		Env:     map[string]string{"TOKEN": secret},
		Stdin:   strings.NewReader("stdin-data\n"),
		Stdout:  &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v", code, err)
	}
	cmdline, rest, ok := strings.Cut(out.String(), "\nenv=")
	if !ok || strings.Contains(cmdline, secret) {
		t.Fatalf("the value is on the command line: %q", out.String())
	}
	if rest != secret+"\nstdin-data\n" {
		t.Fatalf("output %q: want the value exported and stdin intact", out.String())
	}
}
