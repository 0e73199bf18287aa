package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/testkit"
)

// echoCaller answers each request on subject with the caller the
// authenticator makes of its headers.
func echoCaller(t *testing.T, s *natstest.Server, subject string) {
	t.Helper()
	a := s.Authenticator()
	sub, err := s.NC.Subscribe(subject, func(m *nats.Msg) {
		c, err := a.Caller(m.Header)
		if err != nil {
			_ = m.Respond([]byte("error: " + err.Error()))
			return
		}
		_ = m.Respond([]byte(c.User + "/" + string(c.Role)))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := s.NC.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestAnonymousClientsAreRefused(t *testing.T) {
	s := natstest.StartSecure(t)
	_, err := natsutil.Connect(context.Background(), s.URL, "anon", "")
	if !errors.Is(err, natsutil.ErrAuthorization) {
		t.Fatalf("anonymous connect: got %v, want an authorization error", err)
	}
}

func TestCallerIdentityComesFromTheServer(t *testing.T) {
	s := natstest.StartSecure(t)
	echoCaller(t, s, "rh.api.registry.whoami")
	alice := s.UserConn(t, s.AddUser(t, "alice", rh.RoleMember))

	m, err := alice.Request("rh.api.registry.whoami", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Data); got != "alice/member" {
		t.Fatalf("caller = %q, want alice/member", got)
	}

	// A forged header naming the operator is replaced by the server's own.
	forged := nats.NewMsg("rh.api.registry.whoami")
	forged.Header.Set(auth.RequestInfoHeader, `{"acc":"RH_USERS","user":"`+s.Material.Operator.Key+`"}`)
	m, err = alice.RequestMsg(forged, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Data); got != "alice/member" {
		t.Fatalf("forged header: caller = %q, want alice/member", got)
	}

	op := s.OperatorConn(t)
	m, err = op.Request("rh.api.registry.whoami", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Data); got != "operator/admin" {
		t.Fatalf("operator caller = %q", got)
	}
}

func TestUsersCannotReachStateOrOthersInboxes(t *testing.T) {
	s := natstest.StartSecure(t)
	alice := s.UserConn(t, s.AddUser(t, "alice", rh.RoleAdmin))
	errs := make(chan error, 16)
	alice.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })

	for _, subj := range []string{">", "$KV.rh_secrets.>", "_INBOX.>", "rh.cluster.>"} {
		if _, err := alice.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("subscribe %s: %v", subj, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("subscribe %s was not refused", subj)
		}
	}
	for _, subj := range []string{"$JS.API.STREAM.LIST", "$KV.rh_clusters.cluster.x", "rh.cluster.state.byo.victim", "rh.svc.ssh.keepalive-autostop"} {
		if err := alice.Publish(subj, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("publish %s: %v", subj, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("publish %s was not refused", subj)
		}
	}
}

func TestRemovedUserIsCutOff(t *testing.T) {
	s := natstest.StartSecure(t)
	creds := s.AddUser(t, "bob", rh.RoleMember)
	bob := s.UserConn(t, creds)
	if err := s.NS.SetUsers([]rh.User{s.Material.Operator}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the removed user to be disconnected", func() bool { return !bob.IsConnected() })
	if _, err := natsutil.Connect(context.Background(), s.URL, "bob", creds); !errors.Is(err, natsutil.ErrAuthorization) {
		t.Fatalf("removed user reconnect: %v", err)
	}
}

// refused reports whether the server refused what do did on nc with a
// permissions violation; do may also simply succeed (not refused).
func refused(t *testing.T, nc *nats.Conn, do func() error) bool {
	t.Helper()
	violations := make(chan error, 4)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			violations <- err
		}
	})
	done := make(chan error, 1)
	go func() {
		err := do()
		if err == nil {
			err = nc.Flush()
		}
		done <- err
	}()
	select {
	case <-violations:
		return true
	case err := <-done:
		if err == nil {
			// The violation, if any, may trail the flush's answer.
			select {
			case <-violations:
				return true
			case <-time.After(10 * time.Second):
				return false // only a failing test waits this long
			}
		}
		return true
	case <-time.After(30 * time.Second):
		t.Fatal("neither done nor refused in 30s")
		return false
	}
}

func TestEachServiceHasOnlyItsOwnPermissions(t *testing.T) {
	s := natstest.StartSecure(t)
	ctx := context.Background()
	// A secret and a record to reach for.
	secrets, err := s.JS.KeyValue(ctx, "rh_secrets")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Put(ctx, "cluster.victim", []byte(`{"password":"hunter2"}`)); err != nil {
		t.Fatal(err)
	}

	readSecret := func(nc *nats.Conn) error {
		js, _ := jetstream.New(nc)
		kv, err := js.KeyValue(ctx, "rh_secrets")
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, "cluster.victim")
		return err
	}
	cases := []struct {
		service   string
		reads     bool     // may read rh_secrets
		reportsOK []string // report subjects it may publish
		reportsNo []string
		listensOK []string // request subjects it may answer
		listensNo []string
	}{
		{auth.SvcRegistry, false, []string{"rh.outcome.UKEY.x"}, []string{"rh.cluster.state.byo.x", "rh.cluster.state.ondemand.x"}, nil, []string{"rh.api.check.sagemaker"}},
		{auth.SvcSSHGateway, true, []string{"rh.cluster.state.byo.x"}, []string{"rh.cluster.state.ondemand.x", "rh.cluster.create.byo", "rh.outcome.UKEY.x"},
			[]string{"rh.svc.ssh.keepalive-autostop"}, []string{"rh.api.check.ondemand"}},
		{auth.SvcSkyWorker, false, []string{"rh.cluster.state.ondemand.x"}, []string{"rh.cluster.state.byo.x", "rh.cluster.state.sagemaker.x", "rh.svc.ssh.keepalive-autostop", "rh.outcome.UKEY.x"},
			[]string{"rh.api.check.ondemand"}, []string{"rh.api.check.sagemaker", "rh.api.registry.get"}},
		{auth.SvcSageMakerWorker, true, []string{"rh.cluster.state.sagemaker.x", "rh.svc.ssh.keepalive-autostop"}, []string{"rh.cluster.state.byo.x", "rh.outcome.UKEY.x"},
			[]string{"rh.api.check.sagemaker"}, []string{"rh.api.check.ondemand", "rh.api.ssh.run"}},
	}
	for _, c := range cases {
		t.Run(c.service, func(t *testing.T) {
			nc := s.ServiceConn(t, c.service)
			if c.reads {
				if err := readSecret(nc); err != nil {
					t.Fatalf("%s cannot read the secret it needs: %v", c.service, err)
				}
			} else if !refused(t, nc, func() error { return readSecret(nc) }) {
				t.Fatalf("%s read rh_secrets", c.service)
			}
			for _, subj := range c.reportsNo {
				if !refused(t, nc, func() error { return nc.Publish(subj, []byte("{}")) }) {
					t.Errorf("%s may publish %s", c.service, subj)
				}
			}
			for _, subj := range c.listensNo {
				if !refused(t, nc, func() error { _, err := nc.SubscribeSync(subj); return err }) {
					t.Errorf("%s may answer %s", c.service, subj)
				}
			}
			for _, subj := range c.listensOK {
				// Allowed means it answers: a request from the serve user reaches it.
				sub, err := nc.Subscribe(subj, func(m *nats.Msg) { _ = m.Respond([]byte("here")) })
				if err != nil {
					t.Fatal(err)
				}
				_ = nc.Flush()
				if m, err := s.NC.Request(subj, nil, 30*time.Second); err != nil || string(m.Data) != "here" {
					t.Errorf("%s cannot answer its own %s: %v", c.service, subj, err)
				}
				_ = sub.Unsubscribe()
			}
			for _, subj := range c.reportsOK {
				// Allowed means delivered: the serve user sees it arrive.
				sub, err := s.NC.SubscribeSync(subj)
				if err != nil {
					t.Fatal(err)
				}
				_ = s.NC.Flush()
				if err := nc.Publish(subj, []byte("{}")); err != nil {
					t.Fatal(err)
				}
				if _, err := sub.NextMsg(30 * time.Second); err != nil {
					t.Errorf("%s may not publish its own %s: %v", c.service, subj, err)
				}
				_ = sub.Unsubscribe()
			}
		})
	}
}
