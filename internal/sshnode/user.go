package sshnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"sync"
	"syscall"
)

// TestUser is the dedicated local account the harness creates, and the one
// nodes log in as by default when the harness runs as root. Password
// authentication without PAM checks /etc/shadow, so a real account is
// needed; a dedicated one keeps the tests away from root's password. Its
// shell is /bin/sh, which reads no rc file for a command and only the
// stock ~/.profile for a login: a login costs sshd's own work and nothing
// more. (Root's rc here runs pyenv, whose rehash lock makes concurrent
// logins wait tens of seconds.)
const TestUser = "rhtest"

// TestPassword is the password EnsureUser gives TestUser when Options asks for
// password authentication without naming a user. It only protects a throwaway
// account on a test machine, and sshd only listens on loopback or a private
// namespace.
const TestPassword = "rh-test-Pa55word"

// DefaultUser is the account a node accepts when Options names none and
// sets no Password: TestUser when running as root (sshd can switch to it),
// else the current user.
func DefaultUser() string {
	if os.Geteuid() == 0 {
		return TestUser
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// EnsureDefaultUser returns DefaultUser, creating TestUser when needed.
func EnsureDefaultUser(ctx context.Context) (string, error) {
	name := DefaultUser()
	if name == "" {
		return "", errors.New("sshnode: cannot determine the current user")
	}
	if name == TestUser {
		if err := EnsureUser(ctx, TestUser, TestPassword); err != nil {
			return "", err
		}
	}
	return name, nil
}

// ensured remembers the accounts this process already made sure of, so the
// many nodes of a test or benchmark do not each run chpasswd.
var ensured sync.Map // name + "\x00" + password -> struct{}

// EnsureUser creates the local account name (with a home directory and /bin/sh
// as shell) when it is missing and sets its password. It is idempotent and
// safe to call from concurrent test processes: it serialises on a lock file,
// since useradd and chpasswd themselves fail when /etc/shadow is locked.
func EnsureUser(ctx context.Context, name, password string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("sshnode: creating user %q needs root (run: useradd -m -s /bin/sh %s && echo '%s:<password>' | chpasswd)", name, name, name)
	}
	if strings.ContainsAny(name, ":\n") || strings.ContainsAny(password, "\n") {
		return fmt.Errorf("sshnode: invalid user name or password for %q", name)
	}
	memo := name + "\x00" + password
	if _, ok := ensured.Load(memo); ok {
		return nil
	}
	unlock, err := lockFile(ctx, "/tmp/rhtest-users.lock")
	if err != nil {
		return err
	}
	defer unlock()

	if _, err := user.Lookup(name); err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return fmt.Errorf("sshnode: look up user %q: %w", name, err)
		}
		if out, err := exec.CommandContext(ctx, "useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
			// Exit status 9: another process created it first.
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
				return fmt.Errorf("sshnode: useradd %s: %w: %s", name, err, bytes.TrimSpace(out))
			}
		}
	}
	cmd := exec.CommandContext(ctx, "chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		// The output never contains the password; chpasswd does not echo it.
		return fmt.Errorf("sshnode: set password of %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	ensured.Store(memo, struct{}{})
	return nil
}

// lockFile takes an exclusive flock on path, honouring ctx while waiting.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sshnode: open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("sshnode: lock %s: %w", path, err)
		}
		if err := sleepCtx(ctx, pollInterval); err != nil {
			f.Close()
			return nil, fmt.Errorf("sshnode: waiting for lock %s: %w", path, err)
		}
	}
}
