// Package sshnode runs real OpenSSH sshd processes as cluster nodes: each on
// its own loopback address (or inside its own network namespace), with a
// fresh host key and generated authorized keys. Tests use it to talk to a
// genuine sshd instead of a mock, and simulators use it at run time to stand
// in for machines, which is why nothing here needs a *testing.T (see StartT).
//
// Starting nodes needs root (sshd must switch users, read /etc/shadow for
// password logins, and create namespaces) and Debian's openssh-server.
package sshnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultSSHD is where Debian's openssh-server installs the daemon.
const DefaultSSHD = "/usr/sbin/sshd"

// ErrNoSSHD reports that the sshd binary is missing.
var ErrNoSSHD = errors.New("sshnode: sshd not found; install openssh-server (apt-get install -y openssh-server)")

// ErrClosed is returned by methods of a closed Node.
var ErrClosed = errors.New("sshnode: node closed")

// tempPrefix starts the per-node temp dir name, followed by the owner pid.
const tempPrefix = "rhtest-sshd-"

// startTimeout bounds how long Start waits for sshd to listen.
const startTimeout = 15 * time.Second

// Options configure a node. The zero value is a key-only node for
// DefaultUser on a loopback address, which accepts no key until
// AuthorizedKeys are given or AddAuthorizedKey is called.
type Options struct {
	// User is the account clients log in as. Default: DefaultUser (TestUser
	// when running as root, which the harness creates with EnsureUser).
	User string
	// AuthorizedKeys are authorized_keys lines accepted for User.
	AuthorizedKeys []string
	// Port, when set, is the port to listen on (each node has its own
	// loopback address, so several nodes can share one port, as a cluster's
	// machines share port 22). Zero picks a free one.
	Port int
	// Password enables PasswordAuthentication. When User is empty the
	// harness creates TestUser with this password (EnsureUser); when User
	// is set, the account must already have this password.
	Password string
	// ReadOnlyHome mounts User's home directory read-only for sshd and
	// every session (a private mount namespace; the host is unaffected).
	ReadOnlyHome bool
	// Netns runs sshd in a fresh network namespace reached over a veth
	// pair, listening on port 22, so Cut and Restore can sever the node.
	Netns bool
	// SSHD is the daemon binary. Default DefaultSSHD.
	SSHD string
	// ExtraConfig lines are appended to the generated sshd_config.
	ExtraConfig []string
	// ClearStaleShellLock removes, while the node lives, a pyenv rehash lock
	// in the login user's home that outlived its rehash (see watchShellLock).
	// Only a node logging in as a user whose rc runs pyenv (root on the
	// development machines) needs it; TestUser's shell reads no rc file.
	ClearStaleShellLock bool
	// Logger receives sshd's log lines at debug level. Default: discarded
	// (they are always kept for Log).
	Logger *slog.Logger
}

// Node is one running sshd. Its address, port and (until RotateHostKey)
// host key stay the same across Restart, as a rebooted machine's would.
type Node struct {
	opts          Options
	stopLockWatch func()
	user          string
	uid, gid      int
	home          string
	dir           string
	addr          string
	port          int
	ns            *netns
	authPath      string

	mu      sync.Mutex
	hostPub ssh.PublicKey
	proc    *process
	closed  bool
	logs    logRing
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	ready  chan struct{}
	reader chan struct{} // closed when the log pipe hits EOF
	pipe   uint64        // the log pipe's inode, to find every holder
}

var (
	loopbackSeq  atomic.Uint32
	loopbackBase = uint32(rand.IntN(253))
	leftovers    sync.Once
)

// nextLoopback hands out 127.0.0.2 … 127.0.0.254 round-robin from a random
// start, so concurrent nodes of one process differ and different test
// processes rarely coincide (and a coincidence is harmless: ports differ).
func nextLoopback() string {
	x := (loopbackBase+loopbackSeq.Add(1))%253 + 2
	return fmt.Sprintf("127.0.0.%d", x)
}

// EnsureSSHD checks that path (DefaultSSHD when empty) exists and creates
// the privilege separation directory sshd insists on.
func EnsureSSHD(path string) error {
	if path == "" {
		path = DefaultSSHD
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w (looked for %s)", ErrNoSSHD, path)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("sshnode: create sshd privilege separation dir /run/sshd: %w", err)
	}
	return nil
}

// staleLockAge is how old a pyenv rehash lock must be to count as left
// behind: a rehash takes well under a second, even on a loaded machine.
const staleLockAge = 5 * time.Second

// watchShellLock removes, while a node of home lives, a pyenv rehash lock
// that outlived its rehash. Nodes log in through the user's rc files; where
// ~/.bashrc runs `pyenv init`, a login killed mid-rehash (a test cancelling
// a command, a session closed early) leaves the lock behind, and every later
// login then waits up to a minute for it: tests would time out for a reason
// that is not theirs. Removing a live rehash's lock by mistake costs only a
// second rehash running beside it.
func watchShellLock(home string) (stop func()) {
	lock := filepath.Join(home, ".pyenv", "shims", ".pyenv-shim")
	if _, err := os.Stat(filepath.Dir(lock)); err != nil {
		return func() {} // no pyenv here
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := os.Stat(lock); err == nil && time.Since(st.ModTime()) > staleLockAge {
				_ = os.Remove(lock)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// Start launches a node and returns once sshd is listening.
func Start(ctx context.Context, opts Options) (_ *Node, err error) {
	if opts.SSHD == "" {
		opts.SSHD = DefaultSSHD
	}
	if err := EnsureSSHD(opts.SSHD); err != nil {
		return nil, err
	}
	leftovers.Do(func() { CleanupLeftovers(ctx) })

	n := &Node{opts: opts, user: opts.User}
	if n.user == "" {
		if opts.Password != "" {
			n.user = TestUser
			if err := EnsureUser(ctx, TestUser, opts.Password); err != nil {
				return nil, err
			}
		} else if n.user, err = EnsureDefaultUser(ctx); err != nil {
			return nil, err
		}
	}
	u, err := user.Lookup(n.user)
	if err != nil {
		return nil, fmt.Errorf("sshnode: user %q: %w", n.user, err)
	}
	n.home = u.HomeDir
	n.uid, _ = strconv.Atoi(u.Uid)
	n.gid, _ = strconv.Atoi(u.Gid)
	if opts.ClearStaleShellLock {
		n.stopLockWatch = watchShellLock(n.home)
	}

	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.dir, err = os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("sshnode: temp dir: %w", err)
	}
	// sshd reads authorized_keys as the login user, who must reach it.
	if err := os.Chmod(n.dir, 0o755); err != nil {
		return nil, fmt.Errorf("sshnode: %w", err)
	}
	n.authPath = filepath.Join(n.dir, "authorized_keys")
	var keys strings.Builder
	for _, k := range opts.AuthorizedKeys {
		keys.WriteString(strings.TrimSpace(k) + "\n")
	}
	if err := os.WriteFile(n.authPath, []byte(keys.String()), 0o644); err != nil {
		return nil, fmt.Errorf("sshnode: write authorized_keys: %w", err)
	}
	if err := n.newHostKey(); err != nil {
		return nil, err
	}

	if opts.Netns {
		if n.ns, err = newNetns(ctx); err != nil {
			return nil, err
		}
		n.addr, n.port = n.ns.nsIP.String(), 22
		if err := n.launch(ctx); err != nil {
			return nil, err
		}
		return n, nil
	}
	// A free port can be taken between probing and sshd's bind; retry then.
	for attempt := 0; ; attempt++ {
		n.addr = nextLoopback()
		if opts.Port != 0 {
			n.port = opts.Port
		} else if n.port, err = freePort(n.addr); err != nil {
			return nil, err
		}
		err = n.launch(ctx)
		if err == nil {
			return n, nil
		}
		if attempt >= 4 || !strings.Contains(n.Log(), "Address already in use") {
			return nil, err
		}
	}
}

func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("sshnode: find free port on %s: %w", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (n *Node) newHostKey() error {
	pemBytes, pub, err := hostKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "host_ed25519_key"), pemBytes, 0o600); err != nil {
		return fmt.Errorf("sshnode: write host key: %w", err)
	}
	n.mu.Lock()
	n.hostPub = pub
	n.mu.Unlock()
	return nil
}

func (n *Node) config() string {
	pw := "no"
	if n.opts.Password != "" {
		pw = "yes"
	}
	lines := []string{
		"ListenAddress " + net.JoinHostPort(n.addr, strconv.Itoa(n.port)),
		"HostKey " + filepath.Join(n.dir, "host_ed25519_key"),
		"PidFile " + filepath.Join(n.dir, "sshd.pid"),
		"AuthorizedKeysFile " + n.authPath,
		"AllowUsers " + n.user,
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin yes",
		"PubkeyAuthentication yes",
		"PasswordAuthentication " + pw,
		"KbdInteractiveAuthentication no",
		"PermitEmptyPasswords no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"AllowTcpForwarding yes",
		"X11Forwarding no",
		"MaxStartups 100:30:200",
		"LoginGraceTime 30",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
	}
	lines = append(lines, n.opts.ExtraConfig...)
	return strings.Join(lines, "\n") + "\n"
}

// launch writes the config, starts sshd and waits until it listens.
func (n *Node) launch(ctx context.Context) error {
	cfg := filepath.Join(n.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(n.config()), 0o644); err != nil {
		return fmt.Errorf("sshnode: write sshd_config: %w", err)
	}
	// Every wrapper below execs, so the pid we hold is sshd's own.
	args := []string{n.opts.SSHD, "-D", "-e", "-f", cfg}
	if n.opts.ReadOnlyHome {
		args = append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c",
			`mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"`,
			"sh", n.home}, args...)
	}
	if n.ns != nil {
		args = append([]string{"ip", "netns", "exec", n.ns.name}, args...)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sshnode: %w", err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = pw
	// Its own process group, so a ^C aimed at `go test` does not race our
	// orderly shutdown of the node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("sshnode: start sshd: %w", err)
	}
	var st syscall.Stat_t
	_ = syscall.Fstat(int(pw.Fd()), &st)
	pw.Close()
	p := &process{cmd: cmd, exited: make(chan struct{}), ready: make(chan struct{}), reader: make(chan struct{}), pipe: st.Ino}
	listening := fmt.Sprintf("Server listening on %s port %d", n.addr, n.port)
	go func() {
		defer close(p.reader)
		defer pr.Close()
		var once sync.Once
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			n.logs.add(line)
			if n.opts.Logger != nil {
				n.opts.Logger.Debug("sshd", "node", n.HostPort(), "line", line)
			}
			if strings.Contains(line, listening) {
				once.Do(func() { close(p.ready) })
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		<-p.reader
		return fmt.Errorf("sshnode: sshd on %s exited during start (%v); log:\n%s", n.HostPort(), cmd.ProcessState, n.Log())
	case <-ctx.Done():
		n.stopProc(syscall.SIGKILL)
		return fmt.Errorf("sshnode: waiting for sshd on %s: %w", n.HostPort(), ctx.Err())
	case <-timer.C:
		n.stopProc(syscall.SIGKILL)
		return fmt.Errorf("sshnode: sshd on %s not listening after %s; log:\n%s", n.HostPort(), startTimeout, n.Log())
	}
}

// stopProc ends sshd and everything it spawned (per-connection sshd
// processes and the commands they run), as a machine going down would.
// With SIGTERM it gives the processes two seconds before SIGKILL.
func (n *Node) stopProc(sig syscall.Signal) {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		return
	}
	pid := p.cmd.Process.Pid
	tree := append([]int{pid}, descendants(pid)...)
	for _, q := range tree {
		_ = syscall.Kill(q, sig)
	}
	if sig != syscall.SIGKILL {
		select {
		case <-p.exited:
		case <-time.After(2 * time.Second):
		}
	}
	for _, q := range tree {
		signalTree(q, syscall.SIGKILL)
	}
	<-p.exited
	// A connection child forked between the snapshot and sshd's exit is in
	// no tree any more but still serves the old host key; every holder of
	// the log pipe is one of sshd's, so kill those until the pipe closes.
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if p.pipe != 0 {
			for _, q := range pipeHolders(p.pipe) {
				signalTree(q, syscall.SIGKILL)
			}
		}
		select {
		case <-p.reader:
			return
		case <-deadline:
			return
		case <-tick.C:
		}
	}
}

// Addr is the address sshd listens on (127.0.0.x, or the namespace side of
// the veth pair for Netns nodes).
func (n *Node) Addr() string { return n.addr }

// Port is sshd's TCP port.
func (n *Node) Port() int { return n.port }

// HostPort is Addr and Port joined for dialing.
func (n *Node) HostPort() string { return net.JoinHostPort(n.addr, strconv.Itoa(n.port)) }

// User is the account clients log in as.
func (n *Node) User() string { return n.user }

// Home is User's home directory. Loopback nodes share this machine's file
// system, so tests can look there for what a session left.
func (n *Node) Home() string { return n.home }

// Password is the password set for password logins, or "".
func (n *Node) Password() string { return n.opts.Password }

// HostPublicKey is the node's current host key.
func (n *Node) HostPublicKey() ssh.PublicKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hostPub
}

// Pid is the pid of the sshd listener, or 0 when it is not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.cmd.Process.Pid
}

// Log returns sshd's recent log lines, useful when a test fails.
func (n *Node) Log() string { return n.logs.String() }

// AddAuthorizedKey appends an authorized_keys line. sshd reads the file at
// every login, so no restart is needed.
func (n *Node) AddAuthorizedKey(line string) error {
	f, err := os.OpenFile(n.authPath, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("sshnode: open authorized_keys: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.TrimSpace(line) + "\n"); err != nil {
		return fmt.Errorf("sshnode: write authorized_keys: %w", err)
	}
	return nil
}

// Stop shuts sshd and all its sessions down (SIGTERM, then SIGKILL).
func (n *Node) Stop() { n.stopProc(syscall.SIGTERM) }

// Kill SIGKILLs sshd and all its sessions at once: the node dies.
func (n *Node) Kill() { n.stopProc(syscall.SIGKILL) }

// Restart stops the node if running and starts it again on the same address,
// port and host key.
func (n *Node) Restart(ctx context.Context) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	n.Stop()
	return n.launch(ctx)
}

// RotateHostKey gives the node a new host key and restarts it, as a
// reinstalled machine (or a man in the middle) would present.
func (n *Node) RotateHostKey(ctx context.Context) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	n.Stop()
	if err := n.newHostKey(); err != nil {
		return err
	}
	return n.launch(ctx)
}

// Cut drops all traffic to and from a Netns node without telling either
// side, so connections hang rather than fail.
func (n *Node) Cut(ctx context.Context) error {
	if n.ns == nil {
		return errors.New("sshnode: Cut needs a node started with Netns")
	}
	if err := n.ns.cut(ctx); err != nil {
		return fmt.Errorf("sshnode: cut %s: %w", n.HostPort(), err)
	}
	return nil
}

// Restore undoes Cut.
func (n *Node) Restore(ctx context.Context) error {
	if n.ns == nil {
		return errors.New("sshnode: Restore needs a node started with Netns")
	}
	if err := n.ns.restore(ctx); err != nil {
		return fmt.Errorf("sshnode: restore %s: %w", n.HostPort(), err)
	}
	return nil
}

// Exec runs cmd with sh -c "on the node" and returns its combined output:
// inside the node's namespace for Netns nodes, on this machine otherwise
// (loopback nodes share it).
func (n *Node) Exec(ctx context.Context, cmd string) ([]byte, error) {
	args := []string{"sh", "-c", cmd}
	if n.ns != nil {
		args = append([]string{"ip", "netns", "exec", n.ns.name}, args...)
	}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("sshnode: exec on %s: %w", n.HostPort(), err)
	}
	return out, nil
}

// Close kills sshd, removes the network namespace and the temp dir. It is
// idempotent and always attempts every step.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.Kill()
	if n.stopLockWatch != nil {
		n.stopLockWatch()
	}
	if n.ns != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n.ns.delete(ctx)
		cancel()
	}
	if n.dir != "" {
		if err := os.RemoveAll(n.dir); err != nil {
			return fmt.Errorf("sshnode: remove %s: %w", n.dir, err)
		}
	}
	return nil
}

// logRing keeps the last lines of sshd's log.
type logRing struct {
	mu    sync.Mutex
	lines []string
}

const maxLogLines = 2000

func (r *logRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) >= maxLogLines {
		r.lines = r.lines[len(r.lines)-maxLogLines/2:]
	}
	r.lines = append(r.lines, line)
}

func (r *logRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
