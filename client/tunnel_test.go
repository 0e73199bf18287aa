package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
	"github.com/rhq/rh/services/sshgateway"
)

// byoCluster starts rh (NATS, registry, gateway) and one sshd node made
// with opts, and brings up the BYO cluster "box" on it.
func byoCluster(t *testing.T, opts sshnode.Options) (*client.Client, *sshnode.Node) {
	t.Helper()
	cl, key := startRh(t)
	opts.AuthorizedKeys = []string{key.AuthorizedKey}
	n := sshnode.StartT(t, opts)
	createBYO(t, cl, "box", &rh.BYOSpec{IPs: []string{n.Addr()}, SSHUser: n.User(), SSHPort: n.Port()}, key)
	return cl, n
}

// startRh starts NATS, the registry and the gateway, and makes a key for
// nodes to accept.
func startRh(t *testing.T) (*client.Client, *sshnode.UserKey) {
	t.Helper()
	ns := natstest.Start(t)
	reg, err := registry.Start(context.Background(), ns.NC, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	gw, err := sshgateway.Start(context.Background(), ns.NC, sshgateway.Config{
		HomeDir: t.TempDir(), Worker: worker.Config{RetryBase: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(ns.NC, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cl, key
}

// createBYO creates a BYO cluster logging in with key and waits for Up.
func createBYO(t *testing.T, cl *client.Client, name string, spec *rh.BYOSpec, key *sshnode.UserKey) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cl.Create(ctx, name, rh.Spec{Kind: rh.KindBYO, BYO: spec}, &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}); err != nil {
		t.Fatal(err)
	}
	if c, err := cl.WaitPhase(ctx, name, rh.PhaseUp); err != nil {
		t.Fatalf("cluster %s up: %v (%+v)", name, err, c)
	}
}

// httpOnNode starts Python's HTTP server on the node's own loopback (inside
// its network namespace, so only the node's sshd can reach it), serving a
// file holding marker, and stops it when the test ends. It is not a child
// of sshd, so it outlives a restart of the node's sshd, as a service on a
// real machine would.
func httpOnNode(t *testing.T, n *sshnode.Node, port int, marker string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Exec(ctx, fmt.Sprintf("cd %s && python3 -m http.server %d --bind 127.0.0.1 >/dev/null 2>&1 & echo $!", dir, port))
	if err != nil {
		t.Fatalf("start http server: %v: %s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("http server pid %q: %v", out, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	testkit.WaitErr(t, time.Minute, "the http server on the node to listen", func() error {
		out, err := n.Exec(ctx, fmt.Sprintf(`bash -c "exec 3<>/dev/tcp/127.0.0.1/%d"`, port))
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
}

// get fetches the marker file through the tunnel, on a fresh connection.
func get(url string) (string, error) {
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(url + "/marker")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return string(b), nil
}

type eventLog struct {
	mu    sync.Mutex
	kinds []string
}

func (l *eventLog) add(e client.TunnelEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds = append(l.kinds, e.Kind)
}

func (l *eventLog) has(kind string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// A tunnel carries real HTTP to a server on the node, and keeps doing so
// after the node's sshd restarts (every SSH connection to it dropped).
func TestTunnelCarriesHTTPAndSurvivesSSHDRestart(t *testing.T) {
	cl, n := byoCluster(t, sshnode.Options{Netns: true})
	const remotePort = 8765
	httpOnNode(t, n, remotePort, "served on the node")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var events eventLog
	tun, err := cl.Tunnel(ctx, "box", remotePort, client.TunnelOptions{LocalAddr: "127.0.0.1:0", OnEvent: events.add})
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(tun.Addr.String()); host != "127.0.0.1" {
		t.Fatalf("tunnel listens on %s, want loopback", tun.Addr)
	}
	if body, err := get(tun.URL()); err != nil || body != "served on the node" {
		t.Fatalf("GET through the tunnel = %q, %v", body, err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if err := n.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "the tunnel to notice the drop", func() bool { return events.has("lost") })
	testkit.WaitErr(t, 2*time.Minute, "a request through the tunnel after the restart", func() error {
		body, err := get(tun.URL())
		if err == nil && body != "served on the node" {
			err = fmt.Errorf("body %q", body)
		}
		return err
	})
	// Told right after the new connection serves.
	testkit.Eventually(t, 30*time.Second, "a connected event", func() bool { return events.has("connected") })

	cancel()
	select {
	case <-tun.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the tunnel did not end with its context")
	}
	if err := tun.Wait(); err != nil {
		t.Fatalf("Wait after cancel = %v, want nil", err)
	}
	if testkit.ListensHere(t, tun.Addr.String()) {
		t.Fatal("the local port still listens after the tunnel ended")
	}
}

// A local port in use is refused with a conflict naming the port, before
// anything else happens; a remote port nobody listens on is reported and
// the tunnel goes on.
func TestTunnelRefusesALocalPortInUse(t *testing.T) {
	cl, _ := byoCluster(t, sshnode.Options{})
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = cl.Tunnel(ctx, "box", 80, client.TunnelOptions{LocalAddr: busy.Addr().String()})
	if !errors.Is(err, rh.ErrConflict) || !strings.Contains(err.Error(), "local port "+port+" is in use") {
		t.Fatalf("tunnel on a busy port: %v, want a conflict naming port %s", err, port)
	}
	if _, err := cl.Tunnel(ctx, "box", 0, client.TunnelOptions{}); !errors.Is(err, rh.ErrInvalid) {
		t.Fatalf("remote port 0: %v, want invalid", err)
	}
	if _, err := cl.Tunnel(ctx, "box", 80, client.TunnelOptions{Node: "all", LocalAddr: "127.0.0.1:0"}); !errors.Is(err, rh.ErrInvalid) {
		t.Fatalf("tunnel to all nodes: %v, want invalid", err)
	}
	if _, err := cl.Notebook(ctx, "box", client.NotebookOptions{Node: "all", LocalAddr: "127.0.0.1:0"}); !errors.Is(err, rh.ErrInvalid) {
		t.Fatalf("notebook on all nodes: %v, want invalid", err)
	}

	// Nothing listens on the node's port: the connection is closed and
	// reported, the tunnel stays.
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	_, fp, _ := net.SplitHostPort(free.Addr().String())
	free.Close()
	remote, _ := strconv.Atoi(fp)
	var events eventLog
	tun, err := cl.Tunnel(ctx, "box", remote, client.TunnelOptions{LocalAddr: "127.0.0.1:0", OnEvent: events.add})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(tun.URL()); err == nil {
		t.Fatal("GET to a port nothing listens on succeeded")
	}
	testkit.Eventually(t, 30*time.Second, "a refused event", func() bool { return events.has("refused") })
	select {
	case <-tun.Done():
		t.Fatalf("the tunnel ended: %v", tun.Err())
	default:
	}
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
}

// BYO clusters reached through a jump host or a proxy command: the tunnel
// takes the same route as the gateway, with the host keys rh pinned.
func TestTunnelThroughJumpHostAndProxyCommand(t *testing.T) {
	cl, key := startRh(t)
	jump := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	target := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	createBYO(t, cl, "jumped", &rh.BYOSpec{
		IPs: []string{target.Addr()}, SSHUser: target.User(), SSHPort: target.Port(),
		JumpHost: jump.User() + "@" + jump.HostPort(),
	}, key)
	// A proxy command as a bastion's would be: a byte pipe to %h:%p.
	createBYO(t, cl, "proxied", &rh.BYOSpec{
		IPs: []string{target.Addr()}, SSHUser: target.User(), SSHPort: target.Port(),
		ProxyCommand: `exec bash -c 'exec 3<>/dev/tcp/$0/$1; cat <&3 & exec cat >&3' %h %p`,
	}, key)
	// The node is this machine's sshd: a server on loopback is on the node.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "behind a bastion") }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, name := range []string{"jumped", "proxied"} {
		ctx, cancel := context.WithCancel(context.Background())
		tun, err := cl.Tunnel(ctx, name, port, client.TunnelOptions{LocalAddr: "127.0.0.1:0"})
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", name, err)
		}
		hc := &http.Client{Timeout: 20 * time.Second}
		resp, err := hc.Get(tun.URL())
		if err != nil {
			cancel()
			t.Fatalf("%s: GET: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "behind a bastion" {
			t.Errorf("%s: GET through the tunnel = %q", name, b)
		}
		cancel()
		if err := tun.Wait(); err != nil {
			t.Errorf("%s: Wait = %v", name, err)
		}
	}
}

// rh never hands out passwords, so a cluster that logs in only with one
// cannot be tunnelled in-process: the error says what to use instead.
func TestTunnelToAPasswordClusterSaysToUseSSH(t *testing.T) {
	cl, _ := startRh(t)
	n := sshnode.StartT(t, sshnode.Options{Password: sshnode.TestPassword})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := rh.Spec{Kind: rh.KindBYO, BYO: &rh.BYOSpec{IPs: []string{n.Addr()}, SSHUser: n.User(), SSHPort: n.Port()}}
	if _, err := cl.Create(ctx, "pw", spec, &rh.Secrets{Password: n.Password()}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitPhase(ctx, "pw", rh.PhaseUp); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Tunnel(ctx, "pw", 8080, client.TunnelOptions{LocalAddr: "127.0.0.1:0"})
	if !errors.Is(err, rh.ErrConflict) || !strings.Contains(err.Error(), "password") || !strings.Contains(err.Error(), "rhcli ssh pw -N -L") {
		t.Fatalf("tunnel to a password cluster: %v", err)
	}
	if strings.Contains(err.Error(), n.Password()) {
		t.Fatal("the password is in the error")
	}
	// A notebook knows before it starts Jupyter that it could not reach it.
	if _, err := cl.Notebook(ctx, "pw", client.NotebookOptions{LocalAddr: "127.0.0.1:0"}); !errors.Is(err, rh.ErrConflict) || !strings.Contains(err.Error(), "password") {
		t.Fatalf("notebook on a password cluster: %v", err)
	}
}
