package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/rhq/rh/internal/lazyre"
)

// ErrCannotRun matches a CannotRunError: the agent cannot run on this node
// and the gateway should fall back to plain SSH sessions.
var ErrCannotRun = errors.New("agent: cannot run on this node")

// CannotRunError says why a node is unsuitable for the agent.
type CannotRunError struct {
	Reason string
}

func (e *CannotRunError) Error() string { return ErrCannotRun.Error() + ": " + e.Reason }

// Is matches ErrCannotRun.
func (e *CannotRunError) Is(target error) bool { return target == ErrCannotRun }

// InstallDir is where Install places binaries, relative to the home.
const InstallDir = ".rh/bin"

var versionRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// unameArch maps an ELF machine to the `uname -m` spellings of the same
// architecture.
var unameArch = map[elf.Machine][]string{
	elf.EM_X86_64:  {"x86_64", "amd64"},
	elf.EM_AARCH64: {"aarch64", "arm64"},
	elf.EM_386:     {"i386", "i486", "i586", "i686", "x86_64"},
	elf.EM_ARM:     {"armv6l", "armv7l", "armv8l", "aarch64"},
	elf.EM_PPC64:   {"ppc64le", "ppc64"},
	elf.EM_S390:    {"s390x"},
	elf.EM_RISCV:   {"riscv64"},
}

type localBinary struct {
	size  int64
	sum   string
	archs []string
	mach  elf.Machine
}

func inspectBinary(path string) (localBinary, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return localBinary{}, fmt.Errorf("agent: install: %s is not a Linux executable: %w", path, err)
	}
	mach := ef.Machine
	ef.Close()
	archs, ok := unameArch[mach]
	if !ok {
		return localBinary{}, fmt.Errorf("agent: install: %s is built for unsupported machine %s", path, mach)
	}
	f, err := os.Open(path)
	if err != nil {
		return localBinary{}, fmt.Errorf("agent: install: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return localBinary{}, fmt.Errorf("agent: install: read %s: %w", path, err)
	}
	return localBinary{size: n, sum: hex.EncodeToString(h.Sum(nil)), archs: archs, mach: mach}, nil
}

// checkScript inspects the node in one session: OS, architecture, whether
// ~/.rh/bin is writable, and the installed binary's size and checksum; when
// the checksum already matches it also proves the binary executes (a home
// mounted noexec fails here) by starting it with an empty stdin: the agent
// writes its hello, sees EOF and exits 0.
const checkScript = `sum() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -c1-64; else shasum -a 256 "$1" | cut -c1-64; fi; }
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
d="$HOME/%[1]s"; f="$d/rhcli-%[2]s"
echo "path=$f"
if mkdir -p "$d" 2>/dev/null && [ -w "$d" ]; then echo writable=1; else echo writable=0; fi
if [ -f "$f" ]; then
  echo "size=$(wc -c < "$f" | tr -d ' ')"
  s=$(sum "$f"); echo "sum=$s"
  if [ "$s" = "%[3]s" ]; then "$f" agent </dev/null >/dev/null 2>&1; echo "exec=$?"; fi
fi
`

type nodeCheck struct {
	os, arch, path string
	writable       bool
	size           int64
	sum            string
	exec           int // -1: not tried
}

func parseCheck(out string) nodeCheck {
	c := nodeCheck{size: -1, exec: -1}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "os":
			c.os = v
		case "arch":
			c.arch = v
		case "path":
			c.path = v
		case "writable":
			c.writable = v == "1"
		case "size":
			c.size, _ = strconv.ParseInt(v, 10, 64)
		case "sum":
			c.sum = v
		case "exec":
			c.exec, _ = strconv.Atoi(v)
		}
	}
	return c
}

// Install makes sure `~/.rh/bin/rhcli-<version>` on the node is the binary
// at binaryPath (compared by size and SHA-256, in one session), uploading it
// over SFTP to a temporary name, chmod 755, and renaming it into place only
// when missing or different. It returns the absolute remote path and whether
// it uploaded. Nodes where the binary cannot run (not Linux, another
// architecture, no writable home, a noexec home) yield a *CannotRunError.
func Install(ctx context.Context, sshClient *ssh.Client, binaryPath, version string) (remotePath string, uploaded bool, err error) {
	if !versionRE.MatchString(version) {
		return "", false, fmt.Errorf("agent: install: invalid version %q", version)
	}
	bin, err := inspectBinary(binaryPath)
	if err != nil {
		return "", false, err
	}
	out, err := sessionOutput(ctx, sshClient, fmt.Sprintf(checkScript, InstallDir, version, bin.sum))
	if err != nil {
		return "", false, fmt.Errorf("agent: install: inspect node: %w", err)
	}
	chk := parseCheck(out)
	if chk.os == "" || chk.path == "" {
		return "", false, fmt.Errorf("agent: install: unexpected output from the node: %q", trimJunk([]byte(out)))
	}
	if !strings.EqualFold(chk.os, "linux") {
		return "", false, &CannotRunError{Reason: fmt.Sprintf("the node runs %s; the agent binary is for Linux", chk.os)}
	}
	if !archMatches(bin.archs, chk.arch) {
		return "", false, &CannotRunError{Reason: fmt.Sprintf("the node's architecture is %s; the agent binary is built for %s", chk.arch, bin.mach)}
	}
	if chk.size == bin.size && chk.sum == bin.sum {
		if chk.exec != 0 {
			return "", false, noexecError(chk.path, chk.exec)
		}
		return chk.path, false, nil
	}
	if !chk.writable {
		return "", false, &CannotRunError{Reason: fmt.Sprintf("no writable home: cannot create %s", strings.TrimSuffix(chk.path, "/rhcli-"+version))}
	}
	if err := upload(ctx, sshClient, binaryPath, chk.path); err != nil {
		return "", false, err
	}
	// Verify what landed, and that it runs there.
	vout, err := sessionOutput(ctx, sshClient, fmt.Sprintf(checkScript, InstallDir, version, bin.sum))
	if err != nil {
		return "", true, fmt.Errorf("agent: install: verify: %w", err)
	}
	v := parseCheck(vout)
	if v.size != bin.size || v.sum != bin.sum {
		return "", true, fmt.Errorf("agent: install: verify %s: got %d bytes with sha256 %s, want %d bytes with %s", chk.path, v.size, v.sum, bin.size, bin.sum)
	}
	if v.exec != 0 {
		return "", true, noexecError(chk.path, v.exec)
	}
	return chk.path, true, nil
}

func archMatches(archs []string, arch string) bool {
	for _, a := range archs {
		if a == arch {
			return true
		}
	}
	return false
}

func noexecError(path string, code int) error {
	reason := fmt.Sprintf("%s does not run (exit status %d)", path, code)
	if code == 126 {
		reason += ": permission denied executing it; is the home directory mounted noexec?"
	}
	return &CannotRunError{Reason: reason}
}

func upload(ctx context.Context, sshClient *ssh.Client, local, remote string) error {
	// Concurrent writes keep many packets in flight: one at a time, a
	// 30 MB binary takes seconds even over loopback.
	sc, err := sftp.NewClient(sshClient, sftp.UseConcurrentWrites(true))
	if err != nil {
		return fmt.Errorf("agent: install: start sftp: %w", err)
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()

	src, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("agent: install: %w", err)
	}
	defer src.Close()
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	dir, base := remote[:strings.LastIndexByte(remote, '/')+1], remote[strings.LastIndexByte(remote, '/')+1:]
	tmp := dir + "." + base + ".tmp-" + hex.EncodeToString(nonce[:])
	dst, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return ctxOr(ctx, fmt.Errorf("agent: install: create %s: %w", tmp, err))
	}
	ok := false
	defer func() {
		if !ok {
			_ = sc.Remove(tmp)
		}
	}()
	if _, err := dst.ReadFrom(src); err != nil {
		dst.Close()
		return ctxOr(ctx, fmt.Errorf("agent: install: upload: %w", err))
	}
	if err := dst.Close(); err != nil {
		return ctxOr(ctx, fmt.Errorf("agent: install: upload: %w", err))
	}
	if err := sc.Chmod(tmp, 0o755); err != nil {
		return ctxOr(ctx, fmt.Errorf("agent: install: chmod: %w", err))
	}
	// posix-rename replaces atomically; a running older copy keeps its inode.
	if err := sc.PosixRename(tmp, remote); err != nil {
		_ = sc.Remove(remote)
		if err := sc.Rename(tmp, remote); err != nil {
			return ctxOr(ctx, fmt.Errorf("agent: install: rename into place: %w", err))
		}
	}
	ok = true
	return nil
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return err
}

// sessionOutput runs cmd in one session and returns its stdout; ctx ending
// closes the session.
func sessionOutput(ctx context.Context, c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var out, errOut bytes.Buffer
	s.Stdout, s.Stderr = &out, &errOut
	if err := s.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		return "", fmt.Errorf("%w: %s", err, trimJunk(errOut.Bytes()))
	}
	return out.String(), nil
}

// Start runs `<remotePath> agent` in one new session on sshClient and
// handshakes with it. The session lives as long as the Client: Close ends
// both, and the agent dying (or the connection dropping) closes Done.
func Start(ctx context.Context, sshClient *ssh.Client, remotePath string) (*Client, error) {
	s, err := sshClient.NewSession()
	if err != nil {
		return nil, fmt.Errorf("agent: start: open session: %w", err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("agent: start: %w", err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("agent: start: %w", err)
	}
	tail := &tailBuffer{max: 4 << 10}
	s.Stderr = tail
	if err := s.Start(shellQuote(remotePath) + " agent"); err != nil {
		s.Close()
		return nil, fmt.Errorf("agent: start %s: %w", remotePath, err)
	}
	rwc := &sessionRWC{Reader: stdout, stdin: stdin, s: s}
	c, err := NewClient(ctx, rwc)
	if err != nil {
		rwc.Close()
		if msg := tail.String(); msg != "" {
			return nil, fmt.Errorf("agent: start %s: %w (stderr: %s)", remotePath, err, msg)
		}
		return nil, fmt.Errorf("agent: start %s: %w", remotePath, err)
	}
	return c, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// sessionRWC is an SSH session as the agent connection's transport.
type sessionRWC struct {
	io.Reader
	stdin io.WriteCloser
	s     *ssh.Session
	once  sync.Once
}

func (r *sessionRWC) Write(p []byte) (int, error) { return r.stdin.Write(p) }

func (r *sessionRWC) Close() error {
	r.once.Do(func() {
		r.stdin.Close() // EOF first: the agent shuts down cleanly
		r.s.Close()
	})
	return nil
}

// tailBuffer keeps the last max bytes written: the agent's last words.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
