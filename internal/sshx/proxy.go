package sshx

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// expandProxyCommand substitutes OpenSSH's %h, %p, %r, %n and %%.
func expandProxyCommand(cmd string, t Target) (string, error) {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '%' {
			b.WriteByte(cmd[i])
			continue
		}
		if i+1 == len(cmd) {
			return "", fmt.Errorf("proxy command ends with a lone %%")
		}
		i++
		switch cmd[i] {
		case 'h', 'n':
			b.WriteString(t.Host)
		case 'p':
			b.WriteString(strconv.Itoa(t.Port))
		case 'r':
			b.WriteString(t.User)
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("proxy command uses unsupported token %%%c", cmd[i])
		}
	}
	return b.String(), nil
}

// procConn is a net.Conn over a proxy command's stdin and stdout.
// Deadlines are not supported; Dial bounds the handshake by closing.
type procConn struct {
	cmd    *exec.Cmd
	r      *os.File // its stdout
	w      *os.File // its stdin
	stderr tail

	exited  chan struct{}
	waitErr error
	once    sync.Once
}

func startProxy(command string) (*procConn, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	p := &procConn{r: outR, w: inW, exited: make(chan struct{})}
	p.cmd = exec.Command("/bin/sh", "-c", command)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, &p.stderr
	// Own process group, so Close reaches whatever the shell started.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = p.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		inW.Close()
		return nil, fmt.Errorf("start proxy command: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// failure reports the proxy's exit status and stderr if it exits within
// wait: the reason a handshake over it failed.
func (p *procConn) failure(wait time.Duration) *proxyError {
	select {
	case <-p.exited:
	case <-time.After(wait):
		if s := p.stderr.String(); s != "" {
			return &proxyError{stderr: s}
		}
		return nil
	}
	status := "exited"
	if p.waitErr != nil {
		status = p.waitErr.Error()
	}
	return &proxyError{status: status, stderr: p.stderr.String()}
}

func (p *procConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *procConn) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *procConn) Close() error {
	p.once.Do(func() {
		p.w.Close()
		p.r.Close()
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	})
	return nil
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "proxy-command" }

func (p *procConn) LocalAddr() net.Addr              { return pipeAddr{} }
func (p *procConn) RemoteAddr() net.Addr             { return pipeAddr{} }
func (p *procConn) SetDeadline(time.Time) error      { return nil }
func (p *procConn) SetReadDeadline(time.Time) error  { return nil }
func (p *procConn) SetWriteDeadline(time.Time) error { return nil }

// tail keeps the last 2 KiB written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailMax {
		t.buf = t.buf[len(t.buf)-tailMax:]
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
