package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/registry"
)

// secureEnv is a NATS with rh's accounts and the registry on its own
// service user; people connect as users.
type secureEnv struct {
	ns  *natstest.Server
	reg *registry.Service
	op  *client.Client // the local operator (admin)
}

func startSecure(t *testing.T, cfg registry.Config) *secureEnv {
	t.Helper()
	ns := natstest.StartSecure(t)
	cfg.Auth = ns.Authenticator()
	reg, err := registry.Start(context.Background(), ns.ServiceConn(t, auth.SvcRegistry), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	return &secureEnv{ns: ns, reg: reg, op: connClient(t, ns.OperatorConn(t))}
}

func connClient(t *testing.T, nc *nats.Conn) *client.Client {
	t.Helper()
	cl, err := client.New(nc, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// user adds a user with role and returns a client connected as it.
func (e *secureEnv) user(t *testing.T, name string, role rh.Role) *client.Client {
	t.Helper()
	return connClient(t, e.ns.UserConn(t, e.ns.AddUser(t, name, role)))
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rh.ErrForbidden) {
		t.Errorf("%s: got %v, want forbidden", what, err)
	}
}

func names(cs []rh.ClusterSummary) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestMemberWithoutAccessIsForbiddenFromEveryEndpoint(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	alice := e.user(t, "alice", rh.RoleMember)
	bob := e.user(t, "bob", rh.RoleMember)
	c, err := alice.Create(ctx, "alices", byo("10.0.0.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner != "alice" {
		t.Fatalf("owner = %q, want alice", c.Owner)
	}
	_, err = bob.Get(ctx, "alices")
	wantForbidden(t, "get", err)
	if err != nil && (!strings.Contains(err.Error(), `"bob"`) || !strings.Contains(err.Error(), `"alices"`)) {
		t.Errorf("forbidden error %q does not name the user and the cluster", err)
	}
	_, err = bob.History(ctx, "alices")
	wantForbidden(t, "events", err)
	_, err = bob.Up(ctx, "alices")
	wantForbidden(t, "up", err)
	_, err = bob.Teardown(ctx, "alices")
	wantForbidden(t, "teardown", err)
	wantForbidden(t, "delete", bob.Delete(ctx, "alices", true))
	_, err = bob.SetAutostop(ctx, "alices", -1)
	wantForbidden(t, "autostop", err)
	_, err = bob.Refresh(ctx, "alices")
	wantForbidden(t, "refresh", err)
	_, err = bob.Share(ctx, "alices", "bob", rh.AccessWrite)
	wantForbidden(t, "share", err)
	_, err = bob.Unshare(ctx, "alices", "bob")
	wantForbidden(t, "unshare", err)
	_, err = bob.Watch(ctx, "alices")
	wantForbidden(t, "watch", err)

	after, err := alice.Get(ctx, "alices")
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != c.Generation || len(after.History) != len(c.History) || after.Shares != nil {
		t.Fatalf("a forbidden request changed the record: %+v", after)
	}
	if got := streamMsgs(t, e.ns.JS, events.StreamEvents, "rh.cluster.refresh.byo"); got != 0 {
		t.Fatalf("a forbidden refresh published %d events", got)
	}
}

func TestListShowsOwnAndSharedClustersToMembersAndAllToAdminsAndViewers(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	alice := e.user(t, "alice", rh.RoleMember)
	bob := e.user(t, "bob", rh.RoleMember)
	viewer := e.user(t, "audit", rh.RoleViewer)
	for _, n := range []string{"a1", "a2", "a3"} {
		if _, err := alice.Create(ctx, n, byo("10.0.0.1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Create(ctx, "b1", byo("10.0.0.2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Share(ctx, "a2", "bob", rh.AccessRead); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who  string
		cl   *client.Client
		want []string
	}{
		{"alice", alice, []string{"a1", "a2", "a3"}},
		{"bob", bob, []string{"a2", "b1"}},
		{"viewer", viewer, []string{"a1", "a2", "a3", "b1"}},
		{"operator", e.op, []string{"a1", "a2", "a3", "b1"}},
	} {
		cs, err := tc.cl.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(cs); !slices.Equal(got, tc.want) {
			t.Errorf("%s lists %v, want %v", tc.who, got, tc.want)
		}
		for _, c := range cs {
			if want := map[bool]string{true: "bob", false: "alice"}[c.Name == "b1"]; c.Owner != want {
				t.Errorf("%s: summary of %s has owner %q, want %q", tc.who, c.Name, c.Owner, want)
			}
		}
	}
	// Pages stay correct when most clusters are invisible: one at a time.
	var got []string
	req := api.ListRequest{Limit: 1}
	for {
		var r api.ListReply
		if err := bob.Call(ctx, api.RegistrySubject(api.OpList), req, &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, names(r.Clusters)...)
		if r.Next == "" {
			break
		}
		req.After = r.Next
	}
	if !slices.Equal(got, []string{"a2", "b1"}) {
		t.Fatalf("bob's pages of one: %v", got)
	}
}

func TestShareReadAndWriteAndUnshare(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	alice := e.user(t, "alice", rh.RoleMember)
	bob := e.user(t, "bob", rh.RoleMember)
	if _, err := alice.Create(ctx, "shared", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	c, err := alice.Share(ctx, "shared", "bob", rh.AccessRead)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shares["bob"] != rh.AccessRead {
		t.Fatalf("shares = %v", c.Shares)
	}
	if _, err := bob.Get(ctx, "shared"); err != nil {
		t.Fatalf("read share: get: %v", err)
	}
	if _, err := bob.History(ctx, "shared"); err != nil {
		t.Fatalf("read share: events: %v", err)
	}
	_, err = bob.Teardown(ctx, "shared")
	wantForbidden(t, "teardown with a read share", err)
	_, err = bob.Share(ctx, "shared", "bob", rh.AccessWrite)
	wantForbidden(t, "a reader sharing", err)

	if _, err := alice.Share(ctx, "shared", "bob", rh.AccessWrite); err != nil {
		t.Fatal(err)
	}
	if c, err := bob.Teardown(ctx, "shared"); err != nil || c.Status.Phase != rh.PhaseTearingDown {
		t.Fatalf("write share: teardown: %v", err)
	}
	_, err = bob.Share(ctx, "shared", "bob", rh.AccessWrite)
	wantForbidden(t, "a writer (not the owner) sharing", err)

	if _, err := alice.Unshare(ctx, "shared", "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Get(ctx, "shared")
	wantForbidden(t, "get after unshare", err)

	// Bad shares name the field and change nothing.
	before, _ := alice.Get(ctx, "shared")
	for _, tc := range []struct {
		user   string
		access rh.Access
		field  string
	}{
		{"nobody-here", rh.AccessRead, "user"},
		{"Bob!", rh.AccessRead, "user"},
		{"bob", "admin", "access"},
		{"bob", "", "access"},
		{"alice", rh.AccessRead, "user"},
	} {
		_, err := alice.Share(ctx, "shared", tc.user, tc.access)
		if !errors.Is(err, &rh.Error{Code: rh.EINVALID, Field: tc.field}) {
			t.Errorf("share %s %q: got %v, want invalid %s", tc.user, tc.access, err, tc.field)
		}
	}
	after, _ := alice.Get(ctx, "shared")
	if len(after.History) != len(before.History) || len(after.Shares) != 0 {
		t.Fatalf("a refused share changed the record: %+v", after)
	}
}

func TestViewerReadsEverythingAndChangesNothing(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	alice := e.user(t, "alice", rh.RoleMember)
	v := e.user(t, "audit", rh.RoleViewer)
	if _, err := alice.Create(ctx, "x", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "x"); err != nil {
		t.Fatalf("viewer get: %v", err)
	}
	if _, err := v.History(ctx, "x"); err != nil {
		t.Fatalf("viewer events: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	ch, err := v.Watch(wctx, "x")
	if err != nil {
		t.Fatalf("viewer watch: %v", err)
	}
	if c := <-ch; c == nil || c.Name != "x" {
		t.Fatalf("viewer watch: first record %+v", c)
	}
	// Changes reach a user through the streamed-response import too.
	if _, err := alice.Share(ctx, "x", "audit", rh.AccessRead); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-ch:
		if c == nil || c.Shares["audit"] != rh.AccessRead {
			t.Fatalf("viewer watch: second record %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("viewer watch: the change never arrived")
	}
	cancel()
	_, err = v.Create(ctx, "mine", byo("10.0.0.1"), nil)
	wantForbidden(t, "viewer create", err)
	_, err = v.Up(ctx, "x")
	wantForbidden(t, "viewer up", err)
	_, err = v.Teardown(ctx, "x")
	wantForbidden(t, "viewer teardown", err)
	wantForbidden(t, "viewer delete", v.Delete(ctx, "x", true))
	_, err = v.Share(ctx, "x", "audit", rh.AccessWrite)
	wantForbidden(t, "viewer share", err)
	_, err = v.SetAutostop(ctx, "x", -1)
	wantForbidden(t, "viewer autostop", err)
	if _, err := e.op.Get(ctx, "mine"); !errors.Is(err, rh.ErrNotFound) {
		t.Fatalf("a viewer's create stored a record: %v", err)
	}
}

func TestUsersAPI(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	u, creds, err := e.op.AddUser(ctx, "carol", rh.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "carol" || u.Role != rh.RoleMember || u.CreatedBy != "operator" || !strings.HasPrefix(u.Key, "U") {
		t.Fatalf("added user = %+v", u)
	}
	seed, err := auth.ParseCreds(creds)
	if err != nil {
		t.Fatal(err)
	}
	// The NATS server learns of new users from rh_users through serve; here
	// the test tells it.
	if err := e.ns.NS.SetUsers([]rh.User{e.ns.Material.Operator, u}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "carol.creds")
	if err := auth.WriteCredsFile(path, creds); err != nil {
		t.Fatal(err)
	}
	nc, err := natsutil.Connect(ctx, e.ns.URL, "carol", path)
	if err != nil {
		t.Fatalf("the new user's credentials do not connect: %v", err)
	}
	defer nc.Close()
	carol := connClient(t, nc)
	testkit.Eventually(t, 10*time.Second, "carol to be known", func() bool {
		_, err := carol.List(ctx)
		return err == nil
	})
	if _, err := carol.Create(ctx, "carols", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = carol.AddUser(ctx, "dave", rh.RoleAdmin)
	wantForbidden(t, "a member adding a user", err)
	_, err = carol.ListUsers(ctx)
	wantForbidden(t, "a member listing users", err)
	wantForbidden(t, "a member removing a user", carol.RemoveUser(ctx, "operator"))

	if _, _, err := e.op.AddUser(ctx, "carol", rh.RoleViewer); !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("adding carol again: %v, want conflict", err)
	}
	if _, _, err := e.op.AddUser(ctx, "Carol", rh.RoleViewer); !errors.Is(err, &rh.Error{Code: rh.EINVALID, Field: "name"}) {
		t.Fatalf("bad name: %v", err)
	}
	if _, _, err := e.op.AddUser(ctx, "eve", "root"); !errors.Is(err, &rh.Error{Code: rh.EINVALID, Field: "role"}) {
		t.Fatalf("bad role: %v", err)
	}

	us, err := e.op.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range us {
		got = append(got, u.Name+"/"+string(u.Role))
	}
	if !slices.Equal(got, []string{"carol/member", "operator/admin"}) {
		t.Fatalf("users = %v", got)
	}
	raw, _ := json.Marshal(us)
	if strings.Contains(string(raw), string(seed)) {
		t.Fatal("the user list carries a seed")
	}

	// The last admin stays.
	if err := e.op.RemoveUser(ctx, "operator"); !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("removing the last admin: %v, want conflict", err)
	}
	if err := e.op.RemoveUser(ctx, "nobody"); !errors.Is(err, rh.ErrNotFound) {
		t.Fatalf("removing a missing user: %v, want not found", err)
	}

	// A removed user's next request is refused (its connection may linger
	// until serve reloads the server's users; the services refuse it first).
	if err := e.op.RemoveUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "carol to be refused", func() bool {
		_, err := carol.List(ctx)
		return errors.Is(err, rh.ErrForbidden)
	})
}

func TestUsersCannotForgeStateReports(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	creds := e.ns.AddUser(t, "mallory", rh.RoleMember)
	nc := e.ns.UserConn(t, creds)
	errs := make(chan error, 4)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	mallory := connClient(t, nc)
	c, err := mallory.Create(ctx, "x", byo("10.0.0.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.NewState("forged", events.StateReport{Cluster: "x", Kind: rh.KindBYO, Generation: 1, Phase: rh.PhaseUp,
		Message: "all good", Worker: "sshgateway", ObservedAt: time.Now(),
		Nodes: []rh.Node{{Address: "10.0.0.1", ProxyCommand: "sh -c 'id > /tmp/x'"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	if err := nc.Publish(events.StateSubject(rh.KindBYO, "x"), b); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("forged report: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a user's forged report was not refused")
	}
	st, _ := e.ns.JS.Stream(ctx, events.StreamState)
	if info, _ := st.Info(ctx); info.State.Msgs != 0 {
		t.Fatalf("the forged report reached %s", events.StreamState)
	}
	after, err := mallory.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.Phase != c.Status.Phase || len(after.Status.Nodes) != 0 {
		t.Fatalf("the forged report changed the record: %+v", after.Status)
	}
}

func TestWatchStreamsRecordsHeartbeatsAndEnds(t *testing.T) {
	metrics := prometheus.NewRegistry()
	e := start(t, registry.Config{WatchHeartbeat: 50 * time.Millisecond, WatchMaxDuration: 400 * time.Millisecond, Registry: metrics})
	ctx := context.Background()
	if _, err := e.cl.Create(ctx, "w", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	inbox := e.ns.NC.NewInbox()
	sub, err := e.ns.NC.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := e.ns.NC.PublishRequest(api.WatchSubject, inbox, []byte(`{"name":"w"}`)); err != nil {
		t.Fatal(err)
	}
	var types []string
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("stream stalled after %v: %v", types, err)
		}
		if len(m.Data) == 0 {
			t.Fatal("an empty message (it would end a streamed response)")
		}
		var wm api.WatchMessage
		if err := json.Unmarshal(m.Data, &wm); err != nil {
			t.Fatal(err)
		}
		types = append(types, wm.Type)
		if wm.Type == api.WatchTypeEnd {
			break
		}
	}
	if types[0] != api.WatchTypeRecord || !slices.Contains(types, api.WatchTypeHeartbeat) {
		t.Fatalf("stream = %v, want a record first, heartbeats, then end", types)
	}

	// The SDK asks again when a stream ends: changes after several ends
	// still arrive, each once, and the channel closes when the cluster goes.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ch, err := e.cl.Watch(wctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	first := <-ch
	testkit.Eventually(t, 10*time.Second, "the SDK to renew its stream twice", func() bool {
		return counter(t, metrics, "rh_registry_watch_streams_total") >= 4 // the raw one, then three of the SDK's
	})
	if _, err := e.cl.Teardown(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	var gens []int64
	for c := range ch {
		gens = append(gens, c.Generation)
		if c.Status.Phase == rh.PhaseTearingDown {
			if err := e.cl.Delete(ctx, "w", true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if wctx.Err() != nil {
		t.Fatal("the watch did not end when the cluster was deleted")
	}
	if len(gens) != 1 || gens[0] != first.Generation+1 {
		t.Fatalf("records after the first: generations %v, want just %d", gens, first.Generation+1)
	}
	if _, err := e.cl.Watch(ctx, "w"); !errors.Is(err, rh.ErrNotFound) {
		t.Fatalf("watching a deleted cluster: %v", err)
	}
}

// counter reads a counter without labels from a metrics registry.
func counter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// publishReport publishes rep as a worker of kind would, on kind's subject.
func publishReport(t *testing.T, e *env, kind rh.Kind, rep events.StateReport) {
	t.Helper()
	env, err := events.NewState("test", rep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Publish(context.Background(), e.ns.JS, events.StateSubject(kind, rep.Cluster), env); err != nil {
		t.Fatal(err)
	}
}

// dlqReasons returns the reasons of the messages dead-lettered so far from
// stream (every stream when "").
func dlqReasons(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err == nil && (stream == "" || m.Header.Get(events.HeaderDLQStream) == stream) {
			out = append(out, m.Header.Get(events.HeaderDLQReason))
		}
	}
	return out
}

func TestReportProxyCommandsOnlyFromTheWorkerOfTheirKind(t *testing.T) {
	e := start(t, registry.Config{})
	ctx := context.Background()
	if _, err := e.cl.Create(ctx, "b", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	od := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", Provider: "aws"}}
	if _, err := e.cl.Create(ctx, "o", od, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	node := func(proxy string) []rh.Node { return []rh.Node{{Address: "10.0.0.1", ProxyCommand: proxy}} }
	refused := []struct {
		kind rh.Kind
		rep  events.StateReport
		why  string
	}{
		{rh.KindBYO, events.StateReport{Cluster: "b", Kind: rh.KindBYO, Generation: 1, Phase: rh.PhaseUp, Nodes: node("sh -c evil"), Worker: "w", ObservedAt: now}, "from the cluster's spec"},
		{rh.KindSageMaker, events.StateReport{Cluster: "b", Kind: rh.KindSageMaker, Generation: 1, Phase: rh.PhaseUp, Nodes: node("aws ssm start-session"), Worker: "w", ObservedAt: now}, "may not set proxy commands"},
		{rh.KindOnDemand, events.StateReport{Cluster: "o", Kind: rh.KindOnDemand, Generation: 1, Phase: rh.PhaseUp, Nodes: node("ssh -W %h:%p jump\nid"), Worker: "w", ObservedAt: now}, "one line"},
		{rh.KindOnDemand, events.StateReport{Cluster: "o", Kind: rh.KindOnDemand, Generation: 1, Phase: rh.PhaseUp, Nodes: node(strings.Repeat("x", registry.MaxProxyCommand+1)), Worker: "w", ObservedAt: now}, "longer than"},
		{rh.KindOnDemand, events.StateReport{Cluster: "o", Kind: rh.KindOnDemand, Generation: 1, Phase: rh.PhaseUp, Info: manyInfo(registry.MaxReportInfo + 1), Worker: "w", ObservedAt: now}, "entries"},
	}
	for _, r := range refused {
		publishReport(t, e, r.kind, r.rep)
	}
	testkit.Eventually(t, 10*time.Second, "every bad report to be dead-lettered", func() bool {
		return len(dlqReasons(t, e.ns.JS, "")) == len(refused)
	})
	// Reports about different clusters are applied in parallel: any order.
	reasons := strings.Join(dlqReasons(t, e.ns.JS, ""), "\n")
	for i, r := range refused {
		if !strings.Contains(reasons, r.why) {
			t.Errorf("report %d: no dead-letter reason says %q in:\n%s", i, r.why, reasons)
		}
	}
	for _, name := range []string{"b", "o"} {
		c, err := e.cl.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Phase != rh.PhasePending || len(c.Status.Nodes) != 0 {
			t.Fatalf("a refused report changed %s: %+v", name, c.Status)
		}
	}

	// The ondemand worker's own, valid proxy command lands, and an
	// over-long message is cut with a marker.
	long := strings.Repeat("é", registry.MaxReportMessage)
	publishReport(t, e, rh.KindOnDemand, events.StateReport{Cluster: "o", Kind: rh.KindOnDemand, Generation: 1, Phase: rh.PhaseUp,
		Message: long, Nodes: node("ssh -W %h:%p jump"), Worker: "w", ObservedAt: now})
	c := waitFor(t, e, "o", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp })
	if c.Status.Nodes[0].ProxyCommand != "ssh -W %h:%p jump" {
		t.Fatalf("nodes = %+v", c.Status.Nodes)
	}
	if m := c.Status.Message; len(m) > registry.MaxReportMessage || !strings.HasSuffix(m, "[truncated]") || !utf8.ValidString(m) {
		t.Fatalf("long message kept as %d bytes ending %q", len(m), m[max(0, len(m)-20):])
	}
	// A BYO report may echo the spec's proxy command (the gateway reports its targets).
	spec := byo("10.0.0.2")
	spec.BYO.ProxyCommand = "ssh -W %h:%p bastion"
	if _, err := e.cl.Create(ctx, "bp", spec, nil); err != nil {
		t.Fatal(err)
	}
	publishReport(t, e, rh.KindBYO, events.StateReport{Cluster: "bp", Kind: rh.KindBYO, Generation: 1, Phase: rh.PhaseUp,
		Nodes: []rh.Node{{Address: "10.0.0.2", ProxyCommand: spec.BYO.ProxyCommand}}, Worker: "w", ObservedAt: now})
	waitFor(t, e, "bp", "Up", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseUp })
}

func manyInfo(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// TestCreateRetriedWithItsRequestIDIsAnsweredWithTheCluster: the same
// caller sending a create again with its request id gets the cluster that
// create made (one record, one intent); another request id gets the
// conflict; and another user replaying the request id gets neither the
// record nor a success. A malformed request id is refused, naming it.
func TestCreateRetriedWithItsRequestIDIsAnsweredWithTheCluster(t *testing.T) {
	e := startSecure(t, registry.Config{})
	alice := e.user(t, "alice", rh.RoleMember)
	mallory := e.user(t, "mallory", rh.RoleMember)
	ctx := context.Background()
	create := func(cl *client.Client, id string) (*rh.Cluster, error) {
		var r api.ClusterReply
		err := cl.Call(ctx, api.RegistrySubject(api.OpCreate), api.CreateRequest{Name: "mine", Spec: byo("10.0.0.1"), RequestID: id}, &r)
		return r.Cluster, err
	}
	const id = "3f0c6a52-1c4e-4a39-9d64-0b1a4f1f2e77"
	first, err := create(alice, id)
	if err != nil {
		t.Fatal(err)
	}
	again, err := create(alice, id)
	if err != nil {
		t.Fatalf("alice's retry of her own create: %v", err)
	}
	if again.Owner != "alice" || again.Generation != 1 || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("retry answered with %+v, want the record the first create made", again)
	}
	if _, err := create(alice, "another-request"); !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("a create with another request id: %v, want conflict", err)
	}
	if _, err := create(alice, ""); !errors.Is(err, rh.ErrConflict) {
		t.Fatalf("a create without a request id: %v, want conflict", err)
	}
	c, err := create(mallory, id)
	if !errors.Is(err, rh.ErrConflict) || c != nil {
		t.Fatalf("mallory replaying alice's request id: %+v, %v; want a conflict and no record", c, err)
	}
	if _, err := create(alice, "bad id/with slash"); !errors.Is(err, &rh.Error{Code: rh.EINVALID, Field: "request_id"}) {
		t.Fatalf("malformed request id: %v, want invalid request_id", err)
	}
	if n := streamMsgs(t, e.ns.JS, events.StreamEvents, events.IntentSubject(events.OpCreate, rh.KindBYO)); n != 1 {
		t.Fatalf("%d create intents published, want 1", n)
	}
	got, err := alice.Get(ctx, "mine")
	if err != nil || got.Owner != "alice" || got.Generation != 1 || len(got.History) != 1 {
		t.Fatalf("record after the retries: %+v, %v", got, err)
	}
}
