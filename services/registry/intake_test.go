package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/events/schema"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/registry"
)

// publisher is a system that holds only a NATS client: it publishes
// requests and reads its outcomes, nothing else.
type publisher struct {
	nc       *nats.Conn
	key      string
	outcomes *nats.Subscription
}

func (e *secureEnv) publisher(t *testing.T, name string, role rh.Role) *publisher {
	t.Helper()
	nc := e.ns.UserConn(t, e.ns.AddUser(t, name, role))
	u, _ := e.ns.Users.ByName(name)
	sub, err := nc.SubscribeSync(auth.OutcomePrefix(u.Key) + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &publisher{nc: nc, key: u.Key, outcomes: sub}
}

// request encodes a request event as a publisher in another language
// would write it.
func request(id, op, cluster string, data map[string]any) []byte {
	d := map[string]any{"op": op, "cluster": cluster}
	for k, v := range data {
		d[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "ci/pipeline-7", "type": events.TypeRequest,
		"subject": cluster, "time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json", "data": d,
	})
	return b
}

// publish sends a request as a plain publish (no reply), the way `nats pub`
// does, with a forged identity header the server must replace.
func (p *publisher) publish(t *testing.T, body []byte, forgedKey string) {
	t.Helper()
	m := nats.NewMsg(auth.IntakeSubject(p.key))
	m.Data = body
	m.Header.Set(auth.RequestInfoHeader, `{"acc":"RH_USERS","user":"`+forgedKey+`"}`)
	if err := p.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
}

// next returns the next outcome of request id, checked against its schema.
func (p *publisher) next(t *testing.T, id string) events.Outcome {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		m, err := p.outcomes.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		if err := schema.Validate(events.TypeOutcome, m.Data); err != nil {
			t.Fatalf("outcome on %s: %v\n%s", m.Subject, err, m.Data)
		}
		var env struct {
			Data events.Outcome `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if env.Data.RequestID == id {
			return env.Data
		}
	}
	t.Fatalf("no outcome for request %s", id)
	return events.Outcome{}
}

func TestIntakeAppliesARequestOnceAsItsPublisherAndFollowsIt(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	ci := e.publisher(t, "ci", rh.RoleMember)
	spec := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.9"}, "ssh_user": "ml"}}}

	// The header names the operator and the source claims to be the
	// registry: neither counts; the server's stamp does.
	body := request("req-1", "create", "from-ci", spec)
	body = []byte(strings.Replace(string(body), `"ci/pipeline-7"`, `"rh/registry"`, 1))
	ci.publish(t, body, e.ns.Material.Operator.Key)
	o := ci.next(t, "req-1")
	if o.Result != events.OutcomeAccepted || o.Phase != rh.PhasePending || o.Done || o.Cluster != "from-ci" || o.Op != "create" {
		t.Fatalf("first outcome = %+v, want accepted, Pending, not done", o)
	}
	c, err := e.op.Get(ctx, "from-ci")
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner != "ci" {
		t.Fatalf("owner = %q, want ci (the publisher the server stamped)", c.Owner)
	}

	// The cluster's changes follow, correlated to the request, until it settles.
	rep := events.StateReport{Cluster: "from-ci", Kind: rh.KindBYO, Generation: c.Generation, Phase: rh.PhaseProvisioning,
		Message: "connecting", Worker: "test", ObservedAt: time.Now()}
	env, _ := events.NewState("test", rep)
	if _, err := events.Publish(ctx, e.ns.JS, events.StateSubject(rh.KindBYO, "from-ci"), env); err != nil {
		t.Fatal(err)
	}
	if o := ci.next(t, "req-1"); o.Result != events.OutcomeState || o.Phase != rh.PhaseProvisioning || o.Message != "connecting" || o.Done {
		t.Fatalf("second outcome = %+v, want state Provisioning", o)
	}
	rep.Phase, rep.Message, rep.ObservedAt = rh.PhaseUp, "1/1 nodes up", time.Now()
	env, _ = events.NewState("test", rep)
	if _, err := events.Publish(ctx, e.ns.JS, events.StateSubject(rh.KindBYO, "from-ci"), env); err != nil {
		t.Fatal(err)
	}
	if o := ci.next(t, "req-1"); o.Result != events.OutcomeState || o.Phase != rh.PhaseUp || !o.Done {
		t.Fatalf("third outcome = %+v, want state Up, done", o)
	}

	// Published again (a retrying pipeline): the answer again, nothing applied.
	before, _ := e.op.Get(ctx, "from-ci")
	intents := streamMsgs(t, e.ns.JS, events.StreamEvents, events.IntentSubject(events.OpCreate, rh.KindBYO))
	ci.publish(t, request("req-1", "create", "from-ci", spec), "")
	if o := ci.next(t, "req-1"); o.Result != events.OutcomeAccepted || !o.Duplicate || !o.Done {
		t.Fatalf("re-published request: %+v, want the accepted answer marked duplicate", o)
	}
	// The same id for another request is refused, and changes nothing.
	ci.publish(t, request("req-1", "teardown", "from-ci", nil), "")
	if o := ci.next(t, "req-1"); o.Result != events.OutcomeRefused || o.Code != rh.ECONFLICT || !strings.Contains(o.Reason, "already used") {
		t.Fatalf("id reused for a teardown: %+v, want refused (conflict)", o)
	}
	// The same id, op and cluster with another spec is not a repeat either.
	other := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.10"}, "ssh_user": "ml"}}}
	ci.publish(t, request("req-1", "create", "from-ci", other), "")
	if o := ci.next(t, "req-1"); o.Result != events.OutcomeRefused || o.Code != rh.ECONFLICT || !strings.Contains(o.Reason, "spec or options differ") {
		t.Fatalf("id reused for another spec: %+v, want refused (conflict)", o)
	}
	after, _ := e.op.Get(ctx, "from-ci")
	if after.Generation != before.Generation || len(after.History) != len(before.History) || after.Status.Phase != rh.PhaseUp {
		t.Fatalf("a repeated id changed the record: generation %d→%d, history %d→%d, phase %s",
			before.Generation, after.Generation, len(before.History), len(after.History), after.Status.Phase)
	}
	if n := streamMsgs(t, e.ns.JS, events.StreamEvents, events.IntentSubject(events.OpCreate, rh.KindBYO)); n != intents {
		t.Fatalf("create intents %d→%d after a repeat", intents, n)
	}

	// Teardown under a new id: accepted, followed to Terminated; then delete.
	ci.publish(t, request("req-2", "teardown", "from-ci", nil), "")
	o = ci.next(t, "req-2")
	if o.Result != events.OutcomeAccepted || o.Phase != rh.PhaseTearingDown || o.Done {
		t.Fatalf("teardown: %+v, want accepted, TearingDown", o)
	}
	td, _ := e.op.Get(ctx, "from-ci")
	rep = events.StateReport{Cluster: "from-ci", Kind: rh.KindBYO, Generation: td.Generation, Phase: rh.PhaseTerminated,
		Message: "connections closed", Worker: "test", ObservedAt: time.Now()}
	env, _ = events.NewState("test", rep)
	if _, err := events.Publish(ctx, e.ns.JS, events.StateSubject(rh.KindBYO, "from-ci"), env); err != nil {
		t.Fatal(err)
	}
	if o := ci.next(t, "req-2"); o.Phase != rh.PhaseTerminated || !o.Done {
		t.Fatalf("teardown follow: %+v, want Terminated, done", o)
	}
	ci.publish(t, request("req-3", "delete", "from-ci", nil), "")
	if o := ci.next(t, "req-3"); o.Result != events.OutcomeAccepted || !o.Done {
		t.Fatalf("delete: %+v, want accepted, done", o)
	}
	if _, err := e.op.Get(ctx, "from-ci"); rh.ErrorCode(err) != rh.ENOTFOUND {
		t.Fatalf("after delete: %v, want not found", err)
	}
}

func TestIntakeRefusesWhatTheAPIWouldAndDeadLettersMalformedEvents(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	viewer := e.publisher(t, "dash", rh.RoleViewer)
	ci := e.publisher(t, "ci", rh.RoleMember)
	spec := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.9"}}}}

	// A viewer may not create: refused with the reason, nothing recorded.
	viewer.publish(t, request("v-1", "create", "by-viewer", spec), "")
	o := viewer.next(t, "v-1")
	if o.Result != events.OutcomeRefused || o.Code != rh.EFORBIDDEN || o.Reason == "" || !o.Done {
		t.Fatalf("viewer create: %+v, want refused (forbidden) with a reason", o)
	}
	if _, err := e.op.Get(ctx, "by-viewer"); rh.ErrorCode(err) != rh.ENOTFOUND {
		t.Fatalf("viewer's refused create left a record: %v", err)
	}

	// An invalid spec: refused naming the field and the rule.
	ci.publish(t, request("c-1", "create", "bad-spec", map[string]any{"spec": map[string]any{"kind": "ondemand",
		"ondemand": map[string]any{"instance_type": "m5.xlarge", "provider": "mars"}}}), "")
	if o := ci.next(t, "c-1"); o.Result != events.OutcomeRefused || o.Code != rh.EINVALID || !strings.Contains(o.Reason, "provider") {
		t.Fatalf("invalid spec: %+v, want refused (invalid) naming the section", o)
	}
	// Another member's cluster: forbidden, the record untouched.
	if _, err := e.op.Create(ctx, "ops-owned", byo("10.0.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	ci.publish(t, request("c-2", "teardown", "ops-owned", nil), "")
	if o := ci.next(t, "c-2"); o.Result != events.OutcomeRefused || o.Code != rh.EFORBIDDEN {
		t.Fatalf("teardown of another's cluster: %+v, want refused (forbidden)", o)
	}
	if c, _ := e.op.Get(ctx, "ops-owned"); c.Status.Phase != rh.PhasePending {
		t.Fatalf("refused teardown changed the cluster: %s", c.Status.Phase)
	}

	// Malformed: not JSON; an unknown field (say, a key smuggled in). And
	// a request for a key no user holds (a removed user's, say).
	if err := ci.nc.Publish(auth.IntakeSubject(ci.key), []byte("create please")); err != nil {
		t.Fatal(err)
	}
	ci.publish(t, request("c-3", "create", "smuggled", map[string]any{"spec": spec["spec"], "ssh_private_key": "-----BEGIN"}), "")
	if o := ci.next(t, "c-3"); o.Result != events.OutcomeRefused || o.Code != rh.EINVALID || !strings.Contains(o.Reason, "ssh_private_key") {
		t.Fatalf("unknown field: %+v, want refused (invalid) naming it", o)
	}
	if err := e.ns.NC.Publish(auth.IntakeSubject("UREMOVEDUSERKEY"), request("s-1", "create", "from-inside", spec)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, "three intake dead letters", func() bool {
		return len(dlqReasons(t, e.ns.JS, events.StreamIntake)) >= 3
	})
	reasons := strings.Join(dlqReasons(t, e.ns.JS, events.StreamIntake), "\n")
	for _, want := range []string{"malformed intake request from ci: events: envelope", `unknown field "ssh_private_key"`, "unknown or removed user (key UREMOVEDUSER…) on rh.intake.UREMOVEDUSERKEY"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("dead-letter reasons %q lack %q", reasons, want)
		}
	}
	// And the registry keeps going.
	ci.publish(t, request("c-4", "create", "after-junk", spec), "")
	if o := ci.next(t, "c-4"); o.Result != events.OutcomeAccepted {
		t.Fatalf("after malformed events: %+v, want accepted", o)
	}
	for _, name := range []string{"smuggled", "from-inside"} {
		if _, err := e.op.Get(ctx, name); rh.ErrorCode(err) != rh.ENOTFOUND {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
}

func TestIntakeRequestWaitsForARegistryThatIsDown(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ci := e.publisher(t, "ci", rh.RoleMember)
	e.reg.Stop()
	spec := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.9"}}}}
	// With no registry running, a request with a reply gets the stream's
	// acknowledgement: it is stored.
	// With Nats-Msg-Id set to the event id, the stream drops a repeat
	// inside its duplicate window before the registry sees it.
	for i, want := range []string{`"stream":"RH_INTAKE","seq":1}`, `"duplicate": true`} {
		m := nats.NewMsg(auth.IntakeSubject(ci.key))
		m.Data = request("late-1", "create", "while-down", spec)
		m.Header.Set(nats.MsgIdHdr, "late-1")
		ack, err := ci.nc.RequestMsg(m, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(ack.Data), want) {
			t.Fatalf("publish %d: ack = %s, want %s", i+1, ack.Data, want)
		}
	}
	reg, err := registry.Start(context.Background(), e.ns.ServiceConn(t, auth.SvcRegistry), registry.Config{Auth: e.ns.Authenticator()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if o := ci.next(t, "late-1"); o.Result != events.OutcomeAccepted || o.Duplicate {
		t.Fatalf("outcome = %+v, want accepted (once: the repeat never reached the registry)", o)
	}
	c, err := e.op.Get(context.Background(), "while-down")
	if err != nil || c.Owner != "ci" {
		t.Fatalf("cluster = %+v, %v; want ci's", c, err)
	}
}

// A publisher with only a NATS client learns its subjects from the registry.
func TestWhoamiGivesThePublishersSubjects(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ci := e.publisher(t, "ci", rh.RoleMember)
	forged := nats.NewMsg(api.RegistrySubject(api.OpWhoami))
	forged.Header.Set(auth.RequestInfoHeader, `{"acc":"RH_USERS","user":"`+e.ns.Material.Operator.Key+`"}`)
	m, err := ci.nc.RequestMsg(forged, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var who api.WhoamiReply
	if err := json.Unmarshal(m.Data, &who); err != nil {
		t.Fatalf("%s: %v", m.Data, err)
	}
	want := api.WhoamiReply{User: "ci", Role: rh.RoleMember, Key: ci.key, IntakeSubject: "rh.intake." + ci.key, OutcomeSubject: "rh.outcome." + ci.key + ".>"}
	if who != want {
		t.Fatalf("whoami = %+v, want %+v", who, want)
	}
}

// A registry that died after claiming a request and applying it, before
// answering, leaves the claim "applying": the redelivery applies it again,
// which must not refuse what the first attempt did nor do it twice.
func TestIntakeRedeliveryAfterACrashMidRequestAppliesOnce(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	ci := e.publisher(t, "ci", rh.RoleMember)
	ciClient := connClient(t, ci.nc)
	intake, err := e.ns.JS.KeyValue(ctx, events.BucketIntake)
	if err != nil {
		t.Fatal(err)
	}
	claim := func(id, op, cluster string) {
		t.Helper()
		h := sha256.Sum256([]byte(id)) // the registry's key: req.<publisher key>.<hash of id>
		b, _ := json.Marshal(map[string]any{"id": id, "user": "ci", "op": op, "cluster": cluster, "state": "applying",
			"claimed_at": time.Now().Add(-time.Minute).UTC()})
		if _, err := intake.Create(ctx, "req."+ci.key+"."+hex.EncodeToString(h[:16]), b); err != nil {
			t.Fatal(err)
		}
	}
	// The first attempt created the cluster, then died.
	claim("crash-1", "create", "half-done")
	if _, err := ciClient.Create(ctx, "half-done", byo("10.0.0.9"), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := e.op.Get(ctx, "half-done")
	spec := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.9"}}}}
	ci.publish(t, request("crash-1", "create", "half-done", spec), "")
	if o := ci.next(t, "crash-1"); o.Result != events.OutcomeAccepted {
		t.Fatalf("redelivered create: %+v, want accepted (the first attempt's)", o)
	}
	after, _ := e.op.Get(ctx, "half-done")
	if after.Generation != before.Generation || len(after.History) != len(before.History) {
		t.Fatalf("the redelivery changed the record: generation %d→%d", before.Generation, after.Generation)
	}
	// A cluster someone else made under that name is not ours to claim.
	claim("crash-2", "create", "not-mine")
	if _, err := e.op.Create(ctx, "not-mine", byo("10.0.0.8"), nil); err != nil {
		t.Fatal(err)
	}
	ci.publish(t, request("crash-2", "create", "not-mine", spec), "")
	if o := ci.next(t, "crash-2"); o.Result != events.OutcomeRefused || o.Code != rh.ECONFLICT {
		t.Fatalf("create of another's name: %+v, want refused (conflict)", o)
	}
	// A delete that happened before the crash is done, not "not found".
	claim("crash-3", "delete", "gone")
	ci.publish(t, request("crash-3", "delete", "gone", nil), "")
	if o := ci.next(t, "crash-3"); o.Result != events.OutcomeAccepted || !o.Done {
		t.Fatalf("redelivered delete: %+v, want accepted", o)
	}
}

// A registry that stops while a request's cluster is still coming up leaves
// the reporting to the next registry.
func TestIntakeFollowResumesAfterARegistryRestart(t *testing.T) {
	e := startSecure(t, registry.Config{})
	ctx := context.Background()
	ci := e.publisher(t, "ci", rh.RoleMember)
	spec := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.9"}}}}
	ci.publish(t, request("r-1", "create", "resumed", spec), "")
	if o := ci.next(t, "r-1"); o.Result != events.OutcomeAccepted || o.Done {
		t.Fatalf("create: %+v, want accepted, not done", o)
	}
	e.reg.Stop()
	// Released on the way out, so the next registry takes it over at once.
	intake, _ := e.ns.JS.KeyValue(ctx, events.BucketIntake)
	if o := followOwner(t, intake, ci.key, "r-1"); o != "" {
		t.Fatalf("a stopped registry kept its follow (owner %q)", o)
	}
	reg, err := registry.Start(ctx, e.ns.ServiceConn(t, auth.SvcRegistry), registry.Config{Auth: e.ns.Authenticator()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	c, err := e.op.Get(ctx, "resumed")
	if err != nil {
		t.Fatal(err)
	}
	rep := events.StateReport{Cluster: "resumed", Kind: rh.KindBYO, Generation: c.Generation, Phase: rh.PhaseUp,
		Message: "1/1 nodes up", Worker: "test", ObservedAt: time.Now()}
	env, _ := events.NewState("test", rep)
	if _, err := events.Publish(ctx, e.ns.JS, events.StateSubject(rh.KindBYO, "resumed"), env); err != nil {
		t.Fatal(err)
	}
	o := ci.next(t, "r-1")
	if o.Duplicate {
		// The first registry stopped between its answer and its ack, so the
		// second repeated it: still following, not done.
		if o.Result != events.OutcomeAccepted || o.Done {
			t.Fatalf("repeated answer after the restart: %+v, want accepted, not done", o)
		}
		o = ci.next(t, "r-1")
	}
	if o.Result != events.OutcomeState || o.Phase != rh.PhaseUp || !o.Done {
		t.Fatalf("after the restart: %+v, want state Up, done", o)
	}
	// Done: nothing is left for a later registry to resume.
	testkit.Eventually(t, 30*time.Second, "the follow key to go", func() bool {
		keys, err := intake.ListKeysFiltered(ctx, "follow.>")
		if err != nil {
			return false
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 0
	})
}

// A follow whose registry died (it stopped beating, and never released it)
// is taken over by another registry: at its start, or at its next reconcile
// pass; one whose registry still beats is left to it.
func TestIntakeFollowOfADeadRegistryIsTakenOver(t *testing.T) {
	e := startSecure(t, registry.Config{ReconcileEvery: time.Hour})
	ctx := context.Background()
	ci := e.publisher(t, "ci", rh.RoleMember)
	spec := map[string]any{"spec": map[string]any{"kind": "byo", "byo": map[string]any{"ips": []string{"10.0.0.9"}}}}
	for _, id := range []string{"dead-1", "alive-1", "skewed-1"} {
		ci.publish(t, request(id, "create", "c-"+id, spec), "")
		if o := ci.next(t, id); o.Result != events.OutcomeAccepted || o.Done {
			t.Fatalf("create %s: %+v, want accepted, not done", id, o)
		}
	}
	e.reg.Stop()
	intake, _ := e.ns.JS.KeyValue(ctx, events.BucketIntake)
	// setOwner makes the follow of id look owned by owner, who last beat at beat.
	setOwner := func(id, owner string, beat time.Time) {
		t.Helper()
		h := sha256.Sum256([]byte(id))
		key := "follow." + ci.key + "." + hex.EncodeToString(h[:16])
		en, err := intake.Get(ctx, key)
		if err != nil {
			t.Fatalf("follow of %s: %v", id, err)
		}
		var f map[string]any
		_ = json.Unmarshal(en.Value(), &f)
		f["owner"], f["beat"] = owner, beat.UTC()
		b, _ := json.Marshal(f)
		if _, err := intake.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	setOwner("dead-1", "registry-killed", time.Now().Add(-time.Minute))
	setOwner("alive-1", "registry-alive", time.Now())
	// An owner alive and beating, whose clock runs 20 s behind ours.
	skewedBeat := func() { setOwner("skewed-1", "registry-skewed", time.Now().Add(-20*time.Second)) }
	skewedBeat()

	reg, err := registry.Start(ctx, e.ns.ServiceConn(t, auth.SvcRegistry), registry.Config{Auth: e.ns.Authenticator(), ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if o := followOwner(t, intake, ci.key, "alive-1"); o != "registry-alive" {
		t.Fatalf("a follow whose registry still beats was taken by %q", o)
	}
	if o := followOwner(t, intake, ci.key, "skewed-1"); o != "registry-skewed" {
		t.Fatalf("a follow whose registry beats with a lagging clock was taken by %q", o)
	}
	up := func(cluster string) {
		t.Helper()
		c, err := e.op.Get(ctx, cluster)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := events.NewState("test", events.StateReport{Cluster: cluster, Kind: rh.KindBYO, Generation: c.Generation,
			Phase: rh.PhaseUp, Message: "1/1 nodes up", Worker: "test", ObservedAt: time.Now()})
		if _, err := events.Publish(ctx, e.ns.JS, events.StateSubject(rh.KindBYO, cluster), env); err != nil {
			t.Fatal(err)
		}
	}
	up("c-dead-1")
	if o := ci.next(t, "dead-1"); o.Result != events.OutcomeState || o.Phase != rh.PhaseUp || !o.Done {
		t.Fatalf("the dead registry's follow after the start: %+v, want state Up, done", o)
	}

	// The live one dies too: the next reconcile pass takes its follow over.
	setOwner("alive-1", "registry-alive", time.Now().Add(-time.Minute))
	skewedBeat()
	reg.Reconcile(ctx)
	up("c-alive-1")
	if o := ci.next(t, "alive-1"); o.Result != events.OutcomeState || o.Phase != rh.PhaseUp || !o.Done {
		t.Fatalf("the follow after its registry stopped beating: %+v, want state Up, done", o)
	}
	if o := followOwner(t, intake, ci.key, "skewed-1"); o != "registry-skewed" {
		t.Fatalf("a follow whose registry beats with a lagging clock was taken by %q on a later pass", o)
	}

	// The skewed one stops beating: once its key has not moved for a while,
	// as this registry's own clock measures, it is taken over.
	testkit.WaitErr(t, time.Minute, "the silent follow to be taken over", func() error {
		reg.Reconcile(ctx)
		if o := followOwner(t, intake, ci.key, "skewed-1"); o == "registry-skewed" {
			return fmt.Errorf("still owned by %s", o)
		}
		return nil
	})
	up("c-skewed-1")
	if o := ci.next(t, "skewed-1"); o.Result != events.OutcomeState || o.Phase != rh.PhaseUp || !o.Done {
		t.Fatalf("the follow after its lagging registry stopped beating: %+v, want state Up, done", o)
	}
}

// followOwner is the registry the follow of publisher's request id names as
// its owner ("" once released).
func followOwner(t *testing.T, intake jetstream.KeyValue, publisher, id string) string {
	t.Helper()
	h := sha256.Sum256([]byte(id))
	en, err := intake.Get(context.Background(), "follow."+publisher+"."+hex.EncodeToString(h[:16]))
	if err != nil {
		t.Fatalf("follow of %s: %v", id, err)
	}
	var f struct{ Owner string }
	_ = json.Unmarshal(en.Value(), &f)
	return f.Owner
}
