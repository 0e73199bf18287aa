package sshgateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rhq/rh/internal/agent"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
)

// TestMain doubles as netcat for proxy commands: with RH_TEST_NC set to
// addr=port,... it connects to the port of the address in its argument and
// pipes stdin and stdout, as `nc host port` would (no nc on test machines).
//
// It is also the node agent: the gateways of these tests place this binary
// on the nodes (Config.AgentBinaries) as ~/.rh/bin/rhcli-<version>, and
// started as `<that> agent` it serves like `rhcli agent`, reporting the
// version it was placed as, as a real rhcli build reports its own.
func TestMain(m *testing.M) {
	if routes := os.Getenv("RH_TEST_NC"); routes != "" {
		os.Exit(netcat(routes, os.Args[1]))
	}
	if len(os.Args) == 2 && os.Args[1] == "agent" {
		agent.Version = strings.TrimPrefix(filepath.Base(os.Args[0]), "rhcli-")
		os.Exit(agent.Main(context.Background()))
	}
	flag.Parse()
	if !flagSet("test.parallel") {
		// These tests spend their time waiting on sshd, NATS and the nodes'
		// commands, not computing: run more of them at once than the
		// default (GOMAXPROCS, 2 on a small CI machine).
		_ = flag.Set("test.parallel", "8")
	}
	code := m.Run()
	// The nodes run on this machine: remove the binaries the tests placed.
	if u, err := user.Lookup(sshnode.DefaultUser()); err == nil {
		left, _ := filepath.Glob(filepath.Join(u.HomeDir, agent.InstallDir, "rhcli-"+testAgentVersion+"*"))
		for _, p := range left {
			_ = os.Remove(p)
		}
	}
	os.Exit(code)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// testAgentVersion is unique per test process, so concurrent runs sharing
// the home directory never replace each other's agents.
var testAgentVersion = func() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}()

// agentBinaries places this test binary as the agent (see TestMain).
func agentBinaries() map[string]string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return map[string]string{runtime.GOARCH: exe}
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
