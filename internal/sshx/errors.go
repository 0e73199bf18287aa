package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Classes of failure, for errors.Is. Every error this package returns for
// a dial or a run that could not complete matches at most one of them.
var (
	ErrAuthFailed     = errors.New("sshx: authentication refused")
	ErrConnRefused    = errors.New("sshx: connection refused")
	ErrTimeout        = errors.New("sshx: timed out")
	ErrHostKeyChanged = errors.New("sshx: host key changed")
	ErrDNS            = errors.New("sshx: host name not found")
	ErrProxyFailed    = errors.New("sshx: proxy command failed")
	ErrUnreachable    = errors.New("sshx: host unreachable")
	ErrConnLost       = errors.New("sshx: connection lost")
)

// Error is a classified failure to reach or use a node. Its message is
// meant for the user and never holds key material or passwords; Kind is
// the class (one of the Err* variables, or nil), Err the underlying cause.
type Error struct {
	Op     string // what was attempted: "dial", "open session", "run"
	Target string // user@host:port
	Kind   error
	Detail string // why, in words a user understands
	Err    error
}

func (e *Error) Error() string {
	var what string
	switch e.Kind {
	case ErrAuthFailed:
		what = "authentication refused for " + e.Target
	case ErrConnRefused:
		what = "connection refused by " + e.Target
	case ErrTimeout:
		what = e.Op + " " + e.Target + " timed out"
	case ErrDNS:
		what = "cannot resolve host of " + e.Target
	case ErrProxyFailed:
		what = "proxy command for " + e.Target + " failed"
	case ErrUnreachable:
		what = e.Target + " is unreachable"
	case ErrConnLost:
		what = "connection to " + e.Target + " lost"
	default:
		what = e.Op + " " + e.Target + " failed"
	}
	if e.Detail != "" {
		return what + ": " + e.Detail
	}
	if e.Err != nil {
		return what + ": " + e.Err.Error()
	}
	return what
}

// Is reports whether target is e's class.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

func (e *Error) Unwrap() error { return e.Err }

// HostKeyMismatchError is returned when a node presents a host key other
// than the one recorded at first contact. It matches ErrHostKeyChanged.
type HostKeyMismatchError struct {
	Host string // host:port as recorded
	Want string // SHA256 fingerprint recorded
	Got  string // SHA256 fingerprint offered now
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key for %s changed: recorded %s, now offered %s; "+
		"refusing to connect. If the machine was reinstalled, forget its recorded key; otherwise the connection may be intercepted",
		e.Host, e.Want, e.Got)
}

func (e *HostKeyMismatchError) Is(target error) bool { return target == ErrHostKeyChanged }

// proxyError carries what a failed proxy command left behind.
type proxyError struct {
	status string // exit status, or "" while it runs
	stderr string
}

func (e *proxyError) Error() string {
	msg := "proxy command exited"
	if e.status != "" {
		msg = "proxy command " + e.status
	}
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

// classify turns a raw error from dialing or from the SSH layer into an
// *Error (or passes through one that is already classified). ctx is the
// operation's context: once it is done, its error explains the failure
// better than the "use of closed connection" our own cancellation caused.
func classify(ctx context.Context, op, target string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	var hk *HostKeyMismatchError
	if errors.As(err, &ce) || errors.As(err, &hk) {
		return err
	}
	e := &Error{Op: op, Target: target, Err: err}
	var pe *proxyError
	var dns *net.DNSError
	var ne net.Error
	var oce *ssh.OpenChannelError
	msg := err.Error()
	switch {
	case errors.As(err, &pe):
		e.Kind, e.Detail = ErrProxyFailed, pe.Error()
	case ctx != nil && errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout() && !errors.As(err, &dns):
		e.Kind, e.Detail = ErrTimeout, "no answer in time (host down, network cut, or firewall dropping packets)"
		if ctx != nil && ctx.Err() != nil {
			e.Err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	case ctx != nil && errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		e.Detail = "cancelled"
		e.Err = context.Canceled
	case errors.As(err, &dns):
		e.Kind, e.Detail = ErrDNS, fmt.Sprintf("no such host %q", dns.Name)
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(msg, "Connection refused"):
		e.Kind, e.Detail = ErrConnRefused, "nothing is listening on that port (is sshd running?)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		strings.Contains(msg, "No route to host"), strings.Contains(msg, "Network is unreachable"):
		e.Kind, e.Detail = ErrUnreachable, "no route to host"
	case strings.Contains(msg, "unable to authenticate"):
		e.Kind, e.Detail = ErrAuthFailed, "no key or password accepted"
	case errors.As(err, &oce):
		e.Detail = "the server refused a session: " + oce.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, net.ErrClosed), strings.Contains(msg, "connection reset"):
		e.Kind, e.Detail = ErrConnLost, "the server closed the connection"
	}
	return e
}
