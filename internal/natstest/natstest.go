// Package natstest starts real embedded NATS servers for tests: one per test,
// on a random port, with JetStream in a temporary directory.
package natstest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natsembed"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/testkit"
)

// Server is a running test server and a connection to it.
type Server struct {
	NS  *natsembed.Server
	URL string
	// NC is a connection of the services account (the "serve" user on a
	// secure server), and JS its JetStream.
	NC  *nats.Conn
	JS  jetstream.JetStream
	Dir string
	// Material and Users exist on a secure server (StartSecure).
	Material *auth.Material
	Users    *auth.Directory
	users    []rh.User
}

// ConnectTimeout bounds each test connection's handshake: a machine running
// many packages at once may not schedule it within nats.go's default 2 s.
const ConnectTimeout = 30 * time.Second

// Start starts a bare server (no accounts: anyone connects, every request
// is the operator's) with rh's streams and buckets set up. It is stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn starts a bare server storing JetStream under dir, so a test can
// restart one on the same data.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	return start(t, dir, false)
}

// StartSecure starts a server with rh's accounts, as `rhcli serve` runs
// it: services and users in separate accounts, nkey users only, the store
// encrypted. NC is the serve user's connection. Users holds the directory
// services authenticate callers with (Authenticator()); AddUser adds people.
func StartSecure(t testing.TB) *Server {
	t.Helper()
	return start(t, t.TempDir(), true)
}

func start(t testing.TB, dir string, secure bool) *Server {
	t.Helper()
	o := natsembed.Options{StoreDir: dir, Listen: "127.0.0.1:0", MaxStore: 1 << 30, MaxMemory: 64 << 20}
	s := &Server{Dir: dir}
	if secure {
		m, err := auth.EnsureMaterial(filepath.Join(dir, "auth"), "")
		if err != nil {
			t.Fatal(err)
		}
		s.Material = m
		s.users = []rh.User{m.Operator}
		o.Auth = &auth.ServerConfig{ServiceKeys: m.ServiceKeys(), Users: s.users}
		o.StoreKey = m.StoreKey
	}
	ns, err := natsembed.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	s.NS, s.URL = ns, ns.ClientURL()
	var opts []nats.Option
	if secure {
		co, err := auth.ConnectOptions(s.Material.ServiceCreds(auth.SvcServe))
		if err != nil {
			ns.Shutdown()
			t.Fatal(err)
		}
		opts = co
	}
	nc, err := nats.Connect(s.URL, append(opts, nats.Timeout(ConnectTimeout))...)
	if err != nil {
		ns.Shutdown()
		t.Fatal(err)
	}
	s.NC = nc
	s.JS, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := events.Setup(context.Background(), s.JS, events.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if secure {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kv, err := events.UsersBucket(ctx, s.JS)
		if err != nil {
			t.Fatal(err)
		}
		s.putUser(t, kv, s.Material.Operator)
		s.Users, err = auth.WatchDirectory(ctx, kv, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Users.Stop)
	}
	return s
}

func (s *Server) putUser(t testing.TB, kv jetstream.KeyValue, u rh.User) {
	t.Helper()
	b, _ := json.Marshal(u)
	if _, err := kv.Put(context.Background(), auth.UserKey(u.Name), b); err != nil {
		t.Fatal(err)
	}
}

// Authenticator is what services under test authenticate callers with: the
// directory on a secure server, everyone-is-operator on a bare one.
func (s *Server) Authenticator() *auth.Authenticator {
	if s.Users == nil {
		return auth.Insecure()
	}
	return auth.NewAuthenticator(s.Users)
}

// ServiceConn connects as one of rh's service users (secure server only).
func (s *Server) ServiceConn(t testing.TB, service string) *nats.Conn {
	t.Helper()
	nc, err := natsutil.Connect(context.Background(), s.URL, "rh-"+service, s.Material.ServiceCreds(service), nats.Timeout(ConnectTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// OperatorConn connects as the local operator (an admin user).
func (s *Server) OperatorConn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := natsutil.Connect(context.Background(), s.URL, "rh-operator", s.Material.OperatorCreds, nats.Timeout(ConnectTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// AddUser adds a person with a role, on the running server and in the
// directory, and returns the path of its credentials file.
func (s *Server) AddUser(t testing.TB, name string, role rh.Role) string {
	t.Helper()
	pub, seed, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".creds")
	if err := auth.WriteCredsFile(path, auth.CredsText("rh user "+name, seed)); err != nil {
		t.Fatal(err)
	}
	u := rh.User{Name: name, Role: role, Key: pub}
	kv, err := events.UsersBucket(context.Background(), s.JS)
	if err != nil {
		t.Fatal(err)
	}
	s.putUser(t, kv, u)
	s.users = append(s.users, u)
	if err := s.NS.SetUsers(s.users); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "user "+name+" to reach the directory", func() bool {
		_, ok := s.Users.ByName(name)
		return ok
	})
	return path
}

// UserConn connects with a credentials file AddUser wrote.
func (s *Server) UserConn(t testing.TB, creds string) *nats.Conn {
	t.Helper()
	nc, err := natsutil.Connect(context.Background(), s.URL, "rh-test-user", creds, nats.Timeout(ConnectTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Stop shuts the server down; calling it twice is harmless.
func (s *Server) Stop() {
	s.NC.Close()
	s.NS.Shutdown()
}
