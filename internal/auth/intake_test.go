package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natstest"
)

// The server stamps a plain publish (no reply) through the intake import
// with its publisher, but JetStream removes the stamp from the copy it
// stores (nats-server's stream.go: "If we have received this message across
// an account we may have request information attached. For now remove.").
// So the stored request names its publisher by its subject, which
// permissions confine each user to. If the server ever keeps the stamp, this
// test says so and the subject rule can be revisited.
func TestIntakeSubjectNamesThePublisherBecauseStreamsDropTheStamp(t *testing.T) {
	s := natstest.StartSecure(t)
	ctx := context.Background()
	aliceCreds := s.AddUser(t, "alice", rh.RoleMember)
	alice := s.UserConn(t, aliceCreds)
	bob := s.UserConn(t, s.AddUser(t, "bob", rh.RoleMember))
	ak, _ := s.Users.ByName("alice")
	bk, _ := s.Users.ByName("bob")

	live, err := s.NC.SubscribeSync(events.IntakeSubjectPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(auth.IntakeSubject(ak.Key))
	m.Data = []byte(`{}`)
	m.Header.Set(auth.RequestInfoHeader, `{"acc":"RH_USERS","user":"`+s.Material.Operator.Key+`"}`)
	if err := alice.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	got, err := live.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Authenticator().Caller(got.Header); err != nil || c.User != "alice" {
		t.Fatalf("live copy: caller %+v, %v; want alice, stamped over the forged header", c, err)
	}
	if c, key, err := s.Authenticator().Publisher(got.Subject); err != nil || c.User != "alice" || key != ak.Key {
		t.Fatalf("Publisher(%s) = %+v %q %v, want alice", got.Subject, c, key, err)
	}
	st, err := s.JS.Stream(ctx, events.StreamIntake)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.GetLastMsgForSubject(ctx, auth.IntakeSubject(ak.Key))
	if err != nil {
		t.Fatal(err)
	}
	if h := stored.Header.Get(auth.RequestInfoHeader); h != "" {
		t.Logf("JetStream now keeps %s (%s): the stamp could name the publisher", auth.RequestInfoHeader, h)
	}

	// No user may publish as another, nor read another's outcomes (or all).
	if !refused(t, alice, func() error { return alice.Publish(auth.IntakeSubject(bk.Key), []byte(`{}`)) }) {
		t.Error("alice published on bob's intake subject")
	}
	if !refused(t, alice, func() error { return alice.Publish(events.IntakeSubjectPrefix+"cluster", []byte(`{}`)) }) {
		t.Error("alice published on an intake subject that names no one")
	}
	for _, subj := range []string{auth.OutcomePrefix(ak.Key) + ".>", "rh.outcome.>", "rh.outcome.*.x"} {
		if !refused(t, bob, func() error { _, err := bob.SubscribeSync(subj); return err }) {
			t.Errorf("bob subscribed to %s", subj)
		}
	}
	// Alice reads her own.
	own, err := alice.SubscribeSync(auth.OutcomePrefix(ak.Key) + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.NC.Publish(events.OutcomeSubject(ak.Key, "c1"), []byte(`{"to":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := own.NextMsg(30 * time.Second); err != nil || string(m.Data) != `{"to":"alice"}` {
		t.Fatalf("alice's outcome: %v, %v", m, err)
	}
	// An unknown key is nobody.
	if _, _, err := s.Authenticator().Publisher(auth.IntakeSubject("UNOBODY")); rh.ErrorCode(err) != rh.EFORBIDDEN {
		t.Fatalf("unknown key: %v, want forbidden", err)
	}
}
