package testkit

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// handedOut are the addresses FreeAddr returned in this process.
var handedOut sync.Map

var (
	// ownHostBase is this process's second octet of FreeAddr's hosts,
	// random so test processes running side by side rarely share one.
	ownHostBase = 1 + rand.IntN(254)
	ownHostSeq  atomic.Uint32
)

// FreeAddr returns a loopback address for a server a test starts as a
// child (or restarts), whose port is free at the time of asking and was
// never returned before in this process. The port is probed on a host of
// its own, 127.B.x.y, that nothing else in the tests uses: between the
// probe and the child's bind, a listener on 127.0.0.1:0 or an outgoing
// connection (whose source is 127.0.0.1) can be given the same port on
// 127.0.0.1, but not on this host. And once a probe's listener is closed
// the kernel may give the same port to the next probe, and a server given
// one port for two of its listeners (client and monitor, say) dies.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		seq := ownHostSeq.Add(1) % (254 * 254)
		host := fmt.Sprintf("127.%d.%d.%d", ownHostBase, 1+seq/254, 1+seq%254)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
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

// FreePort returns a port free on 127.0.0.1 at the time of asking, for a
// server that must listen there (Jupyter on a node, say).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
