package sshgateway_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
)

// TestMain doubles as netcat for proxy commands: with RH_TEST_NC set to
// addr=port,... it connects to the port of the address in its argument and
// pipes stdin and stdout, as `nc host port` would (no nc on test machines).
func TestMain(m *testing.M) {
	if routes := os.Getenv("RH_TEST_NC"); routes != "" {
		os.Exit(netcat(routes, os.Args[1]))
	}
	os.Exit(m.Run())
}

func netcat(routes, host string) int {
	for _, r := range strings.Split(routes, ",") {
		addr, port, _ := strings.Cut(r, "=")
		if addr != host {
			continue
		}
		c, err := net.Dial("tcp", net.JoinHostPort(addr, port))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			_, _ = io.Copy(c, os.Stdin)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(os.Stdout, c)
		return 0
	}
	fmt.Fprintf(os.Stderr, "no route to %s\n", host)
	return 1
}

func fingerprint(n *sshnode.Node) string { return sshx.Fingerprint(n.HostPublicKey()) }
