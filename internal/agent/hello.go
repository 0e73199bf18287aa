package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// Version is the agent version this binary reports in its hello. The build
// sets it (-ldflags "-X github.com/rhq/rh/internal/agent.Version=..."); the
// gateway compares it with the version it would install to decide upgrades.
var Version = "dev"

// Hello is what each side announces first.
type Hello struct {
	Role         string `json:"role"` // "agent" or "client"
	AgentVersion string `json:"agent_version"`
	Protocol     int    `json:"protocol"`
	MinProtocol  int    `json:"min_protocol"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	PID          int    `json:"pid,omitempty"`
}

func localHello(role string) Hello {
	return Hello{Role: role, AgentVersion: Version, Protocol: ProtocolVersion, MinProtocol: MinProtocolVersion,
		OS: runtime.GOOS, Arch: runtime.GOARCH, PID: os.Getpid()}
}

// ErrIncompatible matches every VersionError.
var ErrIncompatible = errors.New("agent: incompatible protocol version")

// ErrUpgradeNeeded matches a VersionError whose agent is older than this
// client supports: install the current binary and start it again.
var ErrUpgradeNeeded = errors.New("agent: agent upgrade needed")

// VersionError reports peers whose protocol ranges do not overlap.
type VersionError struct {
	Local  Hello
	Remote Hello
}

func (e *VersionError) Error() string {
	who := "agent"
	if e.Remote.Role == "client" {
		who = "client"
	}
	msg := fmt.Sprintf("agent: incompatible protocol: %s %s speaks versions %d..%d, this side speaks %d..%d",
		who, e.Remote.AgentVersion, e.Remote.MinProtocol, e.Remote.Protocol, e.Local.MinProtocol, e.Local.Protocol)
	if e.UpgradeNeeded() {
		msg += " (the agent is older: upgrade it)"
	} else {
		msg += " (the agent is newer than this client)"
	}
	return msg
}

// UpgradeNeeded reports whether the remote agent is older than this side.
func (e *VersionError) UpgradeNeeded() bool {
	if e.Remote.Role == "client" {
		return false
	}
	return e.Remote.Protocol < e.Local.MinProtocol
}

// Is matches ErrIncompatible, and ErrUpgradeNeeded when the agent is older.
func (e *VersionError) Is(target error) bool {
	return target == ErrIncompatible || (target == ErrUpgradeNeeded && e.UpgradeNeeded())
}

// negotiate returns the protocol both sides speak.
func negotiate(local, remote Hello) (int, error) {
	if remote.Protocol < 1 || remote.MinProtocol < 0 || remote.MinProtocol > remote.Protocol {
		return 0, fmt.Errorf("agent: peer announced a nonsensical protocol range %d..%d", remote.MinProtocol, remote.Protocol)
	}
	hi := min(local.Protocol, remote.Protocol)
	lo := max(local.MinProtocol, remote.MinProtocol)
	if lo > hi {
		return 0, &VersionError{Local: local, Remote: remote}
	}
	return hi, nil
}

// handshake sends our hello and reads the peer's. The writer goroutine is
// already running, so both sides may send first without deadlocking on an
// unbuffered transport.
func (c *conn) handshake(ctx context.Context, local Hello) (Hello, int, error) {
	body, err := json.Marshal(local)
	if err != nil {
		return Hello{}, 0, err
	}
	if err := c.enqueue(append(append([]byte{}, magic...), encodeFrame(frameHello, 0, body)...), false); err != nil {
		return Hello{}, 0, err
	}
	type res struct {
		h   Hello
		err error
	}
	done := make(chan res, 1)
	go func() {
		if err := skipToMagic(c.r); err != nil {
			done <- res{err: fmt.Errorf("agent: handshake: %w", err)}
			return
		}
		f, err := readFrame(c.r)
		if err != nil {
			done <- res{err: fmt.Errorf("agent: handshake: %w", err)}
			return
		}
		if f.typ == frameReset && f.stream == 0 {
			done <- res{err: fmt.Errorf("agent: handshake refused by peer: %s", resetMessage(f.payload))}
			return
		}
		if f.typ != frameHello || f.stream != 0 {
			done <- res{err: fmt.Errorf("agent: handshake: expected HELLO, got %s", f)}
			return
		}
		var h Hello
		if err := json.Unmarshal(f.payload, &h); err != nil {
			done <- res{err: fmt.Errorf("agent: handshake: malformed HELLO: %w", err)}
			return
		}
		done <- res{h: h}
	}()
	var r res
	select {
	case r = <-done:
	case <-ctx.Done():
		c.fail(context.Cause(ctx))
		return Hello{}, 0, fmt.Errorf("agent: handshake: %w", context.Cause(ctx))
	}
	if r.err != nil {
		return Hello{}, 0, r.err
	}
	v, err := negotiate(local, r.h)
	if err != nil {
		var ve *VersionError
		if errors.As(err, &ve) {
			// Tell the peer why before hanging up, so its error is as clear.
			_ = c.sendJSON(frameReset, 0, resetBody{Error: err.Error()})
			c.flushWait(time.Second)
		}
		return r.h, 0, err
	}
	return r.h, v, nil
}

// flushWait waits (bounded) until the writer has drained the queue.
func (c *conn) flushWait(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.omu.Lock()
		empty := len(c.out) == 0 || c.closed
		c.omu.Unlock()
		if empty {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
