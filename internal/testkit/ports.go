package testkit

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// handedOut are the addresses FreeAddr returned in this process.
var handedOut sync.Map

// FreeAddr returns a loopback address whose port is free at the time of
// asking and was never returned before in this process: once a probe's
// listener is closed the kernel may give the same port to the next probe,
// and a server given one port for two of its listeners (client and
// monitor, say) dies.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, seen := handedOut.LoadOrStore(addr, true); !seen {
			return addr
		}
	}
	t.Fatal("no fresh free loopback port in 100 tries")
	return ""
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	port, _ := strconv.Atoi(p)
	return port
}

// Listens reports whether something accepts TCP connections at addr. A
// connection to itself does not count: dialing a free port of the
// ephemeral range may be given that very port as its own and connect to
// itself (TCP simultaneous open), which would read as a listener.
func Listens(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	return c.LocalAddr().String() != c.RemoteAddr().String()
}

// ListensHere reports whether this process holds a listening TCP socket on
// the IPv4 address addr. Where the listener is this process's own, use it
// rather than Listens: ports belong to the whole machine, and once ours is
// closed a test running beside it may be given the same one and listen on
// it, which a dial cannot tell apart.
func ListensHere(t testing.TB, addr string) bool {
	t.Helper()
	host, portStr, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host).To4()
	port, perr := strconv.Atoi(portStr)
	if err != nil || ip == nil || perr != nil {
		t.Fatalf("ListensHere(%q): not an IPv4 address and port", addr)
	}
	// /proc/net/tcp: "sl local_address rem_address st ... inode", the
	// address as the kernel's 32-bit word in hex, LISTEN as state 0A.
	want := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip), port)
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	sockets := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == want && f[3] == "0A" {
			sockets["socket:["+f[9]+"]"] = true
		}
	}
	if len(sockets) == 0 {
		return false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && sockets[link] {
			return true
		}
	}
	return false
}
