package sshgateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/sshgateway"
)

// secEnv is a gateway on a NATS with rh's accounts: every request carries
// the caller the server stamped. Records are written straight to the KV
// (the registry is not under test here), with the owner and shares a test
// needs.
type secEnv struct {
	ns   *natstest.Server
	gw   *sshgateway.Service
	logs *testkit.SyncBuffer
}

func startSecure(t *testing.T, adjust func(*sshgateway.Config)) *secEnv {
	t.Helper()
	ns := natstest.StartSecure(t)
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := gatewayConfig(t, log, prometheus.NewRegistry())
	cfg.Auth = ns.Authenticator()
	if adjust != nil {
		adjust(&cfg)
	}
	gw, err := sshgateway.Start(context.Background(), ns.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	return &secEnv{ns: ns, gw: gw, logs: logs}
}

// user adds a user with role and returns a client connected as them.
func (e *secEnv) user(t *testing.T, name string, role rh.Role) *client.Client {
	t.Helper()
	cl, err := client.New(e.ns.UserConn(t, e.ns.AddUser(t, name, role)), clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// put writes an Up record (and its secrets) as the registry would.
func (e *secEnv) put(t *testing.T, c rh.Cluster, sec *rh.Secrets) {
	t.Helper()
	ctx := context.Background()
	c.Status.Phase = rh.PhaseUp
	c.Spec.Kind = rh.KindBYO
	write := func(bucket string, v any) {
		kv, err := e.ns.JS.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		if _, err := kv.Put(ctx, events.ClusterKey(c.Name), b); err != nil {
			t.Fatal(err)
		}
	}
	write(events.BucketClusters, c)
	if sec != nil {
		write(events.BucketSecrets, sec)
	}
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rh.ErrForbidden) {
		t.Errorf("%s: got %v, want forbidden", what, err)
	}
}

func TestSecureAccessOnEveryEndpoint(t *testing.T) {
	t.Parallel()
	e := startSecure(t, nil)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	alice := e.user(t, "alice", rh.RoleMember)
	bob := e.user(t, "bob", rh.RoleMember)
	vic := e.user(t, "vic", rh.RoleViewer)
	rita := e.user(t, "rita", rh.RoleMember)
	e.put(t, rh.Cluster{Name: "alpha", Spec: byoSpec(n), Owner: "alice", Shares: map[string]rh.Access{"rita": rh.AccessRead}},
		&rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	ctx := context.Background()

	// The owner may do everything.
	res, err := alice.Run(ctx, "alpha", "echo hi", client.RunOptions{})
	if err != nil || len(res) != 1 || strings.TrimSpace(res[0].Stdout) != "hi" {
		t.Fatalf("owner's run = %+v, %v", res, err)
	}
	if info, err := alice.SSHInfo(ctx, "alpha", ""); err != nil || info.PrivateKey == "" {
		t.Fatalf("owner's connect: %v", err)
	}

	// A member without access is forbidden from every endpoint.
	_, err = bob.Run(ctx, "alpha", "echo hi", client.RunOptions{})
	wantForbidden(t, "bob run", err)
	_, err = bob.Nodes(ctx, "alpha", "")
	wantForbidden(t, "bob nodes", err)
	wantForbidden(t, "bob status", bob.Call(ctx, api.SSHSubject(api.SSHOpStatus), api.LiveRequest{Name: "alpha"}, nil))
	wantForbidden(t, "bob restart-agent", bob.Call(ctx, api.SSHSubject(api.SSHOpRestartAgent), api.LiveRequest{Name: "alpha"}, nil))
	_, err = bob.SSHInfo(ctx, "alpha", "")
	wantForbidden(t, "bob connect", err)
	_, err = bob.Trust(ctx, "alpha")
	wantForbidden(t, "bob trust", err)
	for _, op := range []string{api.FSStat, api.FSOpen, api.FSCreate, api.FSMkdir, api.FSRemove} {
		wantForbidden(t, "bob fs."+op, bob.Call(ctx, api.FSSubject(op), api.FSRequest{Name: "alpha", Path: "/etc/hostname"}, nil))
	}
	dir := t.TempDir()
	_, err = bob.Download(ctx, "alpha", "/etc", filepath.Join(dir, "etc"), client.SyncOptions{})
	wantForbidden(t, "bob get", err)
	wantForbidden(t, "bob walk", streamCall(t, bob.Conn(), api.FSStreamSubject(api.FSWalk), api.FSRequest{Name: "alpha", Path: "/etc"}))
	wantForbidden(t, "bob hashblocks", streamCall(t, bob.Conn(), api.FSStreamSubject(api.FSHashBlocks),
		api.FSRequest{Name: "alpha", Path: "/etc/hostname", BlockSize: 1024}))
	// The streamed endpoints decode as strictly as the others: a field the
	// API does not have is an invalid request naming it, even for the owner.
	for _, op := range []string{api.FSWalk, api.FSHashBlocks} {
		err := streamCall(t, alice.Conn(), api.FSStreamSubject(op),
			map[string]any{"name": "alpha", "path": "/etc/hostname", "block_size": 1024, "recursive": true})
		if !errors.Is(err, rh.ErrInvalid) || !strings.Contains(err.Error(), `"recursive"`) {
			t.Errorf("%s with an unknown field: %v, want invalid naming it", op, err)
		}
	}

	// A viewer reads but cannot run or connect.
	if err := vic.Call(ctx, api.SSHSubject(api.SSHOpStatus), api.LiveRequest{Name: "alpha"}, nil); err != nil {
		t.Errorf("viewer status: %v", err)
	}
	_, err = vic.Run(ctx, "alpha", "echo hi", client.RunOptions{})
	wantForbidden(t, "viewer run", err)
	_, err = vic.SSHInfo(ctx, "alpha", "")
	wantForbidden(t, "viewer connect", err)

	// A read share shows status, nothing more.
	if err := rita.Call(ctx, api.SSHSubject(api.SSHOpStatus), api.LiveRequest{Name: "alpha"}, nil); err != nil {
		t.Errorf("read share status: %v", err)
	}
	_, err = rita.Run(ctx, "alpha", "echo hi", client.RunOptions{})
	wantForbidden(t, "read share run", err)
	_, err = rita.SSHInfo(ctx, "alpha", "")
	wantForbidden(t, "read share connect", err)
	wantForbidden(t, "read share put", func() error {
		_, err := rita.Upload(ctx, "alpha", dir, "/tmp/x", client.SyncOptions{})
		return err
	}())

	// An open handle is its opener's alone.
	var h api.FSHandleReply
	if err := alice.Call(ctx, api.FSSubject(api.FSOpen), api.FSRequest{Name: "alpha", Path: "/etc/hostname"}, &h); err != nil {
		t.Fatal(err)
	}
	read := func(subject, handle string) *nats.Msg {
		m := nats.NewMsg(subject + "." + api.FSRead)
		m.Header.Set(api.HdrHandle, handle)
		m.Header.Set(api.HdrOffset, "0")
		m.Header.Set(api.HdrLength, "100")
		return m
	}
	// Its subject is under alice's own prefix: NATS refuses bob there.
	wantPublishRefused(t, "bob reads alice's handle", bob.Conn(), read(h.HandleSubject, h.Handle))
	m := nats.NewMsg(h.HandleSubject + "." + api.FSClose)
	m.Header.Set(api.HdrHandle, h.Handle)
	wantPublishRefused(t, "bob closes alice's handle", bob.Conn(), m)
	// On his own handle subject (a cluster of his own), naming alice's
	// handle is refused by the gateway.
	e.put(t, rh.Cluster{Name: "beta", Spec: byoSpec(n), Owner: "bob"}, &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	var bh api.FSHandleReply
	if err := bob.Call(ctx, api.FSSubject(api.FSOpen), api.FSRequest{Name: "beta", Path: "/etc/hostname"}, &bh); err != nil {
		t.Fatal(err)
	}
	if bh.HandleSubject == h.HandleSubject {
		t.Fatalf("bob's and alice's open files share the subject %s", h.HandleSubject)
	}
	wantForbidden(t, "bob reads alice's handle on his own subject", rawCall(t, bob.Conn(), read(bh.HandleSubject, h.Handle)))
	if err := rawCall(t, bob.Conn(), read(bh.HandleSubject, bh.Handle)); err != nil {
		t.Fatalf("bob reads his own handle: %v", err)
	}
	if err := rawCall(t, alice.Conn(), m); err != nil {
		t.Fatalf("alice closes her handle: %v", err)
	}
}

// streamCall sends a streamed request and returns the first answer's error.
func streamCall(t *testing.T, nc *nats.Conn, subject string, req any) error {
	t.Helper()
	body, _ := json.Marshal(req)
	m := nats.NewMsg(subject)
	m.Data = body
	return rawCall(t, nc, m)
}

// rawCall sends m as a request and decodes an rh error from the answer.
func rawCall(t *testing.T, nc *nats.Conn, m *nats.Msg) error {
	t.Helper()
	rep, err := nc.RequestMsg(m, 15*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", m.Subject, err)
	}
	if rep.Header.Get("Nats-Service-Error-Code") == "" {
		return nil
	}
	var e rh.Error
	if json.Unmarshal(rep.Data, &e) != nil || e.Code == "" {
		return errors.New(rep.Header.Get("Nats-Service-Error"))
	}
	return &e
}

// wantPublishRefused checks that NATS refuses nc's publish of m for lack of
// permission, so it never reaches a service.
func wantPublishRefused(t *testing.T, what string, nc *nats.Conn, m *nats.Msg) {
	t.Helper()
	refused := make(chan struct{}, 1)
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if prev != nil {
			prev(c, sub, err)
		}
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), m.Subject) {
			select {
			case refused <- struct{}{}:
			default:
			}
		}
	})
	defer nc.SetErrorHandler(prev)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatalf("%s: publish: %v", what, err)
	}
	select {
	case <-refused:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: NATS did not refuse the publish to %s", what, m.Subject)
	}
}

// Another user can neither redirect a run's output nor cancel someone
// else's run; the output reaches only the caller.
func TestRunOutputAndControlBelongToTheCaller(t *testing.T) {
	t.Parallel()
	e := startSecure(t, nil)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	alice := e.user(t, "alice", rh.RoleMember)
	bob := e.user(t, "bob", rh.RoleMember)
	e.put(t, rh.Cluster{Name: "alpha", Spec: byoSpec(n), Owner: "alice"}, &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})

	// The old attack: naming a subject for the output. The field is gone,
	// and a request carrying it is refused before anything runs.
	marker := filepath.Join(n.TempDir(t), "ran")
	body, _ := json.Marshal(map[string]any{"name": "alpha", "command": "touch " + marker, "stream": "rh.cluster.state.byo.victim"})
	m := nats.NewMsg(api.SSHStreamSubject(api.SSHOpRun))
	m.Data = body
	if err := rawCall(t, alice.Conn(), m); !errors.Is(err, rh.ErrInvalid) {
		t.Fatalf("run with a stream subject: %v, want invalid", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}

	// Bob tries to cancel, acknowledge and feed alice's run (its id leaked).
	inbox := alice.Conn().NewInbox()
	sub, err := alice.Conn().SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = json.Marshal(api.RunRequest{Name: "alpha", Command: "cat; sleep 2; echo finished", RunID: "alices-run", Stdin: true})
	if err := alice.Conn().PublishRequest(api.SSHStreamSubject(api.SSHOpRun), inbox, body); err != nil {
		t.Fatal(err)
	}
	first, err := sub.NextMsg(15 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var acc api.RunAccepted
	if err := json.Unmarshal(first.Data, &acc); err != nil || acc.RunID != "alices-run" {
		t.Fatalf("first message %q: %v", first.Data, err)
	}
	cm := nats.NewMsg(acc.CancelSubject)
	wantForbidden(t, "bob cancels alice's run", rawCall(t, bob.Conn(), cm))
	// A run's acks and input are under its user's own prefix: NATS itself
	// refuses them from anyone else, so a flood never reaches the run.
	am := nats.NewMsg(acc.AckSubject)
	am.Data = []byte("1000000")
	wantPublishRefused(t, "bob acks alice's run", bob.Conn(), am)
	im := nats.NewMsg(acc.StdinSubject)
	im.Data = []byte("bob was here ")
	wantPublishRefused(t, "bob writes to alice's run's stdin", bob.Conn(), im)
	im = nats.NewMsg(acc.StdinSubject)
	im.Header.Set(api.HdrEOF, "1")
	wantPublishRefused(t, "bob ends alice's run's stdin", bob.Conn(), im)
	for _, in := range []*nats.Msg{{Subject: acc.StdinSubject, Data: []byte("from alice, ")}, {Subject: acc.StdinSubject, Header: nats.Header{api.HdrEOF: []string{"1"}}}} {
		if err := rawCall(t, alice.Conn(), in); err != nil {
			t.Fatalf("alice's own input: %v", err)
		}
	}

	var out strings.Builder
	var done api.RunDone
	for done.RunID == "" {
		msg, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("run stream: %v", err)
		}
		if len(msg.Data) == 0 && len(msg.Header) == 0 {
			t.Fatal("the stream ended before done")
		}
		switch msg.Header.Get(api.HdrEvent) {
		case api.EventData:
			out.Write(msg.Data)
		case api.EventDone:
			if err := json.Unmarshal(msg.Data, &done); err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.TrimSpace(out.String()) != "from alice, finished" || done.Results[0].ExitCode != 0 {
		t.Fatalf("alice's run: output %q, results %+v: bob's cancel or input took effect?", out.String(), done.Results)
	}
}

// A member's proxy command would run on the gateway host as the gateway's
// user: refused, with the way to allow it; an admin's runs.
func TestProxyCommandOfMemberDoesNotRunOnGateway(t *testing.T) {
	t.Parallel()
	e := startSecure(t, nil)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	mallory := e.user(t, "mallory", rh.RoleMember)
	marker := filepath.Join(t.TempDir(), "pwned")
	spec := byoSpec(n)
	spec.BYO.ProxyCommand = "touch " + marker + "; exit 1"
	sec := &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}
	e.put(t, rh.Cluster{Name: "evil", Spec: spec, Owner: "mallory"}, sec)
	ctx := context.Background()
	_, err := mallory.Run(ctx, "evil", "true", client.RunOptions{})
	wantForbidden(t, "member's proxy command", err)
	if err == nil || !strings.Contains(err.Error(), "--allow-proxy-commands") {
		t.Errorf("the error should say how to allow it: %v", err)
	}
	for _, op := range []func() error{
		func() error { _, err := mallory.SSHInfo(ctx, "evil", ""); return err },
		func() error { _, err := mallory.Nodes(ctx, "evil", ""); return err },
	} {
		wantForbidden(t, "member's proxy command", op())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the proxy command ran on the gateway host")
	}

	// The operator (an admin) owns a cluster with a proxy command: it runs.
	e.put(t, rh.Cluster{Name: "ops", Spec: spec, Owner: e.ns.Material.Operator.Name}, sec)
	op, err := client.New(e.ns.OperatorConn(t), clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Run(ctx, "ops", "true", client.RunOptions{}); errors.Is(err, rh.ErrForbidden) {
		t.Fatalf("admin's proxy command refused: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the admin's proxy command did not run: %v", err)
	}
}

// Trust is scoped: a pin belongs to the cluster that recorded it, so a
// cluster that merely names the same address cannot unpin it.
func TestTrustScopedToWhatTheCallerMayChange(t *testing.T) {
	t.Parallel()
	e := startSecure(t, nil)
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	alice := e.user(t, "alice", rh.RoleMember)
	carol := e.user(t, "carol", rh.RoleMember)
	sec := &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}
	e.put(t, rh.Cluster{Name: "victim", Spec: byoSpec(n), Owner: "carol"}, sec)
	e.put(t, rh.Cluster{Name: "lookalike", Spec: byoSpec(n), Owner: "alice"}, nil)
	ctx := context.Background()
	// Carol's first contact records the key.
	if _, err := carol.Run(ctx, "victim", "true", client.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Trust(ctx, "lookalike")
	wantForbidden(t, "trust through a lookalike", err)
	hk, err := e.ns.JS.KeyValue(ctx, events.BucketHostKeys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hk.Get(ctx, strings.NewReplacer(":", "=").Replace(n.HostPort())); errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal("the victim's host key was forgotten")
	}
	// The pin is carol's cluster's (it recorded it): she may forget it,
	// though alice's lookalike names the address too.
	if got, err := carol.Trust(ctx, "victim"); err != nil || len(got) != 1 {
		t.Fatalf("recorder's trust = %v, %v", got, err)
	}
	// A pin recorded before pins had owners is refused while someone
	// else's cluster names the address; an admin may forget it.
	if _, err := hk.Put(ctx, strings.NewReplacer(":", "=").Replace(n.HostPort()), []byte(key.AuthorizedKey+"\n")); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Trust(ctx, "lookalike")
	wantForbidden(t, "trust of an ownerless pin another user's cluster relies on", err)
	op, err := client.New(e.ns.OperatorConn(t), clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := op.Trust(ctx, "lookalike"); err != nil || len(got) != 1 {
		t.Fatalf("admin's trust = %v, %v", got, err)
	}
	// Alone on its address, the owner's own trust works.
	n2 := keyNodes(t, 1, key)[0]
	e.put(t, rh.Cluster{Name: "solo", Spec: byoSpec(n2), Owner: "alice"}, sec)
	if _, err := alice.Run(ctx, "solo", "true", client.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := alice.Trust(ctx, "solo"); err != nil || len(got) != 1 {
		t.Fatalf("owner's trust = %v, %v", got, err)
	}
}

// A cluster with no key or password of its own never logs in with the
// gateway's identity, unless the operator lends it; even then, connect never
// hands the gateway's key out.
func TestGatewayIdentityIsNotLent(t *testing.T) {
	t.Parallel()
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	withOwnKey := func(lend bool) func(*sshgateway.Config) {
		return func(c *sshgateway.Config) {
			c.LendOwnIdentity = lend
			if err := os.MkdirAll(filepath.Join(c.HomeDir, ".ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.HomeDir, ".ssh", "id_ed25519"), key.PrivatePEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := startWith(t, withOwnKey(false))
	e.secrets = append(e.secrets, string(key.PrivatePEM))
	e.create(t, "bare", byoSpec(n), nil)
	c := e.waitPhase(t, "bare", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "does not lend its own identity") || !strings.Contains(c.Status.Message, "--ssh-key") {
		t.Fatalf("message = %q", c.Status.Message)
	}
	spec := byoSpec(n)
	spec.BYO.UseAgent = true
	e.create(t, "agent", spec, nil)
	if c := e.waitPhase(t, "agent", rh.PhaseFailed); !strings.Contains(c.Status.Message, "ssh-agent") {
		t.Fatalf("message = %q", c.Status.Message)
	}

	// The operator's opt-in.
	e = startWith(t, withOwnKey(true))
	e.secrets = append(e.secrets, string(key.PrivatePEM))
	e.create(t, "bare", byoSpec(n), nil)
	e.waitPhase(t, "bare", rh.PhaseUp)
	info, err := e.cl.SSHInfo(context.Background(), "bare", "")
	if err != nil {
		t.Fatal(err)
	}
	if info.PrivateKey != "" {
		t.Fatal("connect handed out the gateway's own key")
	}
}

// The pool keys connections by credentials: a wrong password for the same
// user@host:port fails even while a connection with the right one is live.
func TestPoolIsolatesWrongPassword(t *testing.T) {
	t.Parallel()
	e := start(t)
	n := sshnode.StartT(t, sshnode.Options{Password: sshnode.TestPassword})
	e.create(t, "right", byoSpec(n), &rh.Secrets{Password: n.Password()})
	e.waitPhase(t, "right", rh.PhaseUp)
	if res, err := e.cl.Run(context.Background(), "right", "true", client.RunOptions{}); err != nil || res[0].ExitCode != 0 {
		t.Fatalf("run = %+v, %v", res, err)
	}
	e.create(t, "wrong", byoSpec(n), &rh.Secrets{Password: "not-" + n.Password()})
	c := e.waitPhase(t, "wrong", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "authentication refused") {
		t.Fatalf("message = %q", c.Status.Message)
	}
}

// The pool keys connections by host-key policy: a pinned cluster never
// rides on a connection that ignored the host key.
func TestPoolIsolatesHostKeyPolicy(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	key := userKey(t, sshnode.KeyEd25519)
	n := keyNodes(t, 1, key)[0]
	sec := &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}
	// The address is pinned to another key: whatever answers there now is
	// not the machine first seen.
	hk, err := e.ns.JS.KeyValue(ctx, events.BucketHostKeys)
	if err != nil {
		t.Fatal(err)
	}
	other := userKey(t, sshnode.KeyEd25519)
	if _, err := hk.Put(ctx, strings.NewReplacer(":", "=").Replace(n.HostPort()), []byte(other.AuthorizedKey+"\n")); err != nil {
		t.Fatal(err)
	}
	loose := byoSpec(n)
	loose.BYO.InsecureIgnoreHostKey = true
	e.create(t, "loose", loose, sec)
	e.waitPhase(t, "loose", rh.PhaseUp)
	e.create(t, "pinned", byoSpec(n), sec)
	c := e.waitPhase(t, "pinned", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "changed") {
		t.Fatalf("message = %q", c.Status.Message)
	}
}

// connect says whose proxy command it hands out, so `rhcli ssh` can refuse
// to run another user's command on the caller's machine.
func TestConnectSaysWhoWroteTheProxyCommand(t *testing.T) {
	t.Parallel()
	e := startSecure(t, func(c *sshgateway.Config) { c.AllowProxyCommands = true })
	key := userKey(t, sshnode.KeyEd25519)
	nodes := keyNodes(t, 2, key)
	mallory := e.user(t, "mallory", rh.RoleMember)
	alice := e.user(t, "alice", rh.RoleMember)
	sec := &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}
	e.put(t, rh.Cluster{Name: "relay", Spec: byoSpec(nodes...), Owner: "mallory", Shares: map[string]rh.Access{"alice": rh.AccessWrite}}, sec)
	ctx := context.Background()

	info, err := alice.SSHInfo(ctx, "relay", "")
	if err != nil {
		t.Fatal(err)
	}
	if info.ProxyCommand == "" || info.ProxyCommandBy != "mallory" || info.Caller != "alice" {
		t.Fatalf("alice's connect: proxy %q by %q, caller %q; want mallory's command and alice as caller", info.ProxyCommand, info.ProxyCommandBy, info.Caller)
	}
	own, err := mallory.SSHInfo(ctx, "relay", "")
	if err != nil {
		t.Fatal(err)
	}
	if own.ProxyCommandBy != own.Caller {
		t.Fatalf("the owner's own command: by %q, caller %q", own.ProxyCommandBy, own.Caller)
	}
}

// TestKeepAliveRewriteIsForServicesOnly: the autostop rewrite the
// sagemakerworker asks for lies outside what people may publish to, so no
// user — not even an admin — gets an answer from it.
func TestKeepAliveRewriteIsForServicesOnly(t *testing.T) {
	e := startSecure(t, nil)
	ada := e.user(t, "ada", rh.RoleAdmin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rep api.KeepAliveAutostopReply
	err := ada.Call(ctx, api.KeepAliveAutostopSubject, api.KeepAliveAutostopRequest{Name: "alpha", Minutes: 1}, &rep)
	if err == nil || rep.Nodes != 0 {
		t.Fatalf("an admin reached the keep-alive rewrite: %+v, %v", rep, err)
	}
}
