package natstest

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/internal/testkit"
)

// Cluster is a NATS cluster of embedded servers on loopback, for fault tests.
type Cluster struct {
	Servers []*server.Server
	// URL lists every server's client URL, comma-separated, for nats.Connect.
	URL string
}

// StartCluster starts n servers with JetStream, routed to each other, and
// waits until JetStream has a meta leader. They are stopped when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	// Every server routes to every other, so the route addresses are
	// chosen before any server starts.
	routeAddrs := make([]*net.TCPAddr, n)
	var routes []*url.URL
	for i := range routeAddrs {
		a := testkit.FreeAddr(t)
		routeAddrs[i] = net.TCPAddrFromAddrPort(netip.MustParseAddrPort(a))
		routes = append(routes, &url.URL{Scheme: "nats", Host: a})
	}
	c := &Cluster{}
	var urls []string
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("rh-test-%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxMemory: 32 << 20, JetStreamMaxStore: 2 << 30, // a limit that reservations count against, not an allocation
			Cluster: server.ClusterOpts{Name: "rh-test", Host: routeAddrs[i].IP.String(), Port: routeAddrs[i].Port},
			Routes:  routes, NoLog: true, NoSigs: true,
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d not ready", i)
		}
		c.Servers = append(c.Servers, ns)
		urls = append(urls, ns.ClientURL())
	}
	c.URL = strings.Join(urls, ",")
	t.Cleanup(func() {
		for _, ns := range c.Servers {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	})
	testkit.Eventually(t, 30*time.Second, "the JetStream cluster to elect a meta leader", func() bool {
		return slices.ContainsFunc(c.Servers, (*server.Server).JetStreamIsLeader)
	})
	return c
}

// JetStream wraps nc for a test.
func JetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
