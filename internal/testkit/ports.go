package testkit

import (
	"net"
	"strconv"
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
