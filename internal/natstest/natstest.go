// Package natstest starts real embedded NATS servers for tests: one per test,
// on a random port, with JetStream in a temporary directory.
package natstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natsutil"
)

// Server is a running test server and a connection to it.
type Server struct {
	NS  *server.Server
	URL string
	NC  *nats.Conn
	JS  jetstream.JetStream
	Dir string
}

// Start starts a server with rh's streams and buckets set up. It is stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn starts a server storing JetStream under dir, so a test can restart
// one on the same data.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	ns, err := natsutil.StartEmbedded(natsutil.EmbeddedOptions{StoreDir: dir, Listen: "127.0.0.1:0", MaxStore: 1 << 30, MaxMemory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		ns.Shutdown()
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{NS: ns, URL: ns.ClientURL(), NC: nc, JS: js, Dir: dir}
	t.Cleanup(s.Stop)
	if err := events.Setup(context.Background(), js, events.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Stop shuts the server down; calling it twice is harmless.
func (s *Server) Stop() {
	s.NC.Close()
	s.NS.Shutdown()
	s.NS.WaitForShutdown()
}
