package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
	"github.com/rhq/rh/services/sshgateway"
)

// background runs rhcli until ctx ends; the returned channel gives its
// exit code.
func (e *registryEnv) background(ctx context.Context, out, errb io.Writer, args ...string) <-chan int {
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, args, cli.IO{In: strings.NewReader(""), Out: out, Err: errb, Getenv: func(k string) string { return e.env[k] }})
	}()
	return done
}

var tunnelURL = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)

func TestTunnelThroughRhcli(t *testing.T) {
	e := startRegistry(t)
	node := startGateway(t, e)
	// The node is this machine's sshd: a server on loopback is on the node.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from the node") }))
	defer srv.Close()
	_, remotePort, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// Bad ports exit 2 naming the part, before connecting.
	for _, arg := range []string{"http", "0", "70000", "80:x", "80:-1"} {
		if code, _, stderr := e.rhcli(t, "tunnel", "box", arg); code != cli.ExitInvalid || !strings.Contains(stderr, "PORT") {
			t.Errorf("tunnel box %s: exit %d, %q; want 2 naming the port", arg, code, stderr)
		}
	}
	if code, _, stderr := e.rhcli(t, "tunnel", "box", "80", "--bind", "not an address"); code != cli.ExitInvalid || !strings.Contains(stderr, "--bind") {
		t.Errorf("tunnel --bind junk: exit %d, %q", code, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testkit.SyncBuffer
	done := e.background(ctx, &out, &errb, "tunnel", "box", remotePort+":0")
	testkit.Eventually(t, time.Minute, "the tunnel's URL", func() bool { return tunnelURL.MatchString(out.String()) })
	url := tunnelURL.FindString(out.String())
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v (stderr %q)", url, err, errb.String())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from the node" {
		t.Fatalf("GET through the tunnel = %q", body)
	}

	// The local port is taken now: a second tunnel on it is refused, naming it.
	_, localPort, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	code, _, stderr := e.rhcli(t, "tunnel", "box", remotePort+":"+localPort)
	if code != cli.ExitConflict || !strings.Contains(stderr, "local port "+localPort+" is in use") {
		t.Fatalf("tunnel on a busy port: exit %d, %q", code, stderr)
	}

	// The node's sshd restarts: the tunnel says so, reconnects, and carries
	// requests again on the same local port.
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if err := node.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitErr(t, 2*time.Minute, "a request through the tunnel after the restart", func() error {
		hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "hello from the node" {
			return fmt.Errorf("body %q", b)
		}
		return nil
	})
	// The reconnection is told right after the new connection serves.
	testkit.Eventually(t, 30*time.Second, "stderr telling the drop and the reconnection", func() bool {
		s := errb.String()
		return strings.Contains(s, "lost") && strings.Contains(s, "reconnecting") && strings.Contains(s, "reconnected")
	})

	// Ctrl-C ends it cleanly and frees the port.
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("tunnel after Ctrl-C: exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the tunnel did not end on Ctrl-C")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+localPort, 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the local port still listens after Ctrl-C")
	}
}

// Tunnelling gives network reach into the node, as ssh does: it needs
// write access. A member without access and a viewer are refused (exit 5).
func TestTunnelNeedsWriteAccess(t *testing.T) {
	ns := natstest.StartSecure(t)
	reg, err := registry.Start(context.Background(), ns.ServiceConn(t, auth.SvcRegistry), registry.Config{Auth: ns.Authenticator()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	gw, err := sshgateway.Start(context.Background(), ns.ServiceConn(t, auth.SvcSSHGateway), sshgateway.Config{
		HomeDir: t.TempDir(), Auth: ns.Authenticator(), Worker: worker.Config{RetryBase: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	n := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	aliceCreds := ns.AddUser(t, "alice", rh.RoleMember)
	alice, err := client.New(ns.UserConn(t, aliceCreds), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := rh.Spec{Kind: rh.KindBYO, BYO: &rh.BYOSpec{IPs: []string{n.Addr()}, SSHUser: n.User(), SSHPort: n.Port()}}
	if _, err := alice.Create(ctx, "box", spec, &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WaitPhase(ctx, "box", rh.PhaseUp); err != nil {
		t.Fatal(err)
	}
	e := &registryEnv{ns: ns, env: map[string]string{"RH_NATS_URL": ns.URL, "USER": "tester", "HOME": t.TempDir()}}
	for _, u := range []struct {
		name string
		role rh.Role
	}{{"bob", rh.RoleMember}, {"vic", rh.RoleViewer}} {
		creds := ns.AddUser(t, u.name, u.role)
		code, out, stderr := e.as(t, creds, "tunnel", "box", "8080:0")
		if code != cli.ExitForbidden || !strings.Contains(stderr, u.name) || out != "" {
			t.Errorf("%s (%s) tunnels to alice's cluster: exit %d, out %q, stderr %q; want 5", u.name, u.role, code, out, stderr)
		}
	}
	// The owner may.
	tctx, tcancel := context.WithCancel(context.Background())
	var out, errb testkit.SyncBuffer
	aliceEnv := *e
	aliceEnv.env = map[string]string{"RH_NATS_URL": ns.URL, "RH_NATS_CREDS": aliceCreds, "HOME": t.TempDir()}
	done := aliceEnv.background(tctx, &out, &errb, "tunnel", "box", "8080:0", "-o", "json")
	testkit.Eventually(t, time.Minute, "alice's tunnel", func() bool { return strings.Contains(out.String(), `"url"`) })
	tcancel()
	if code := <-done; code != 0 {
		t.Fatalf("alice's tunnel: exit %d: %s", code, errb.String())
	}
}

// rhcli ssh passes -L (and -N) to OpenSSH: a real ssh forwards a port to a
// server on the node; a busy local port fails ssh at once.
func TestSSHPassesForwardsToOpenSSH(t *testing.T) {
	e := startRegistry(t)
	startGateway(t, e)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "through openssh") }))
	defer srv.Close()
	_, remotePort, _ := net.SplitHostPort(srv.Listener.Addr().String())

	if code, _, stderr := e.rhcli(t, "ssh", "box", "-L", "-oProxyCommand=evil"); code != cli.ExitInvalid || !strings.Contains(stderr, "-L") {
		t.Fatalf("ssh -L with an option: exit %d, %q", code, stderr)
	}
	if code, _, stderr := e.rhcli(t, "ssh", "box", "-N", "--", "true"); code != cli.ExitInvalid || !strings.Contains(stderr, "-N") {
		t.Fatalf("ssh -N with a command: exit %d, %q", code, stderr)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, localPort, _ := net.SplitHostPort(busy.Addr().String())
	fwd := "127.0.0.1:" + localPort + ":localhost:" + remotePort
	code, _, stderr := e.rhcli(t, "ssh", "box", "-N", "-L", fwd)
	if code != 255 || !strings.Contains(stderr, localPort) {
		t.Fatalf("ssh -L on a busy port: exit %d, %q; want ssh's 255 naming the port", code, stderr)
	}
	busy.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testkit.SyncBuffer
	done := e.background(ctx, &out, &errb, "ssh", "box", "-N", "-L", fwd)
	testkit.WaitErr(t, time.Minute, "a request through ssh -L", func() error {
		resp, err := http.Get("http://127.0.0.1:" + localPort)
		if err != nil {
			return fmt.Errorf("%w (ssh said %q)", err, errb.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "through openssh" {
			return fmt.Errorf("body %q", b)
		}
		return nil
	})
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ssh did not end on Ctrl-C")
	}
}

// rhcli notebook starts Debian's jupyter-notebook on the node, prints a
// URL with a token that works, refuses a busy local port before starting
// anything, and Ctrl-C stops Jupyter on the node.
func TestNotebookThroughRhcli(t *testing.T) {
	e := startRegistry(t)
	startGateway(t, e)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	code, out, stderr := e.rhcli(t, "notebook", "box", "--port", busyPort)
	if code != cli.ExitConflict || !strings.Contains(stderr, "local port "+busyPort+" is in use") || out != "" {
		t.Fatalf("notebook on a busy port: exit %d, %q %q", code, out, stderr)
	}
	busy.Close()
	if code, _, stderr := e.rhcli(t, "notebook", "box", "--port", "-1"); code != cli.ExitInvalid || !strings.Contains(stderr, "--port") {
		t.Fatalf("notebook --port -1: exit %d, %q", code, stderr)
	}

	// The freed port: local and (very likely free too) on the node.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var outb, errb testkit.SyncBuffer
	done := e.background(ctx, &outb, &errb, "notebook", "box", "--port", busyPort, "-o", "json")
	var nb struct {
		URL        string `json:"url"`
		Token      string `json:"token"`
		RemotePort int    `json:"remote_port"`
	}
	testkit.WaitErr(t, 5*time.Minute, "the notebook's URL", func() error {
		select {
		case code := <-done:
			t.Fatalf("notebook ended: exit %d: %s", code, errb.String())
		default:
		}
		return json.Unmarshal([]byte(outb.String()), &nb)
	})
	if !strings.HasPrefix(nb.URL, "http://127.0.0.1:"+busyPort+"/") || nb.Token == "" {
		t.Fatalf("notebook printed %+v", nb)
	}
	resp, err := http.Get("http://127.0.0.1:" + busyPort + "/api/status?token=" + nb.Token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Jupyter's status through the tunnel: %s", resp.Status)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("notebook after Ctrl-C: exit %d: %s", code, errb.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("notebook did not end on Ctrl-C")
	}
	// The node is this machine: Jupyter's port there is closed now.
	testkit.WaitErr(t, time.Minute, "Jupyter to stop on the node", func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(nb.RemotePort)), time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("port %d on the node still answers", nb.RemotePort)
		}
		return nil
	})
}
