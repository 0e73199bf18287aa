package sshgateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/sshgateway"
)

// counter is a counter's value with the label value lv, 0 when absent.
func counter(t *testing.T, reg *prometheus.Registry, name, lv string) float64 {
	return sample(t, reg, name, lv).GetCounter().GetValue()
}

// gauge is a gauge's value with the label value lv, 0 when absent.
func gauge(t *testing.T, reg *prometheus.Registry, name, lv string) float64 {
	return sample(t, reg, name, lv).GetGauge().GetValue()
}

// sample is metric name's sample with the label value lv, nil when absent.
func sample(t *testing.T, reg *prometheus.Registry, name, lv string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == lv {
					return m
				}
			}
		}
	}
	return nil
}

// eventually polls cond until it returns nil or d passes, failing the test
// with cond's last error.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	var err error
	if !testkit.Poll(d, func() bool { err = cond(); return err == nil }) {
		t.Fatalf("%s: still failing after %s: %v", what, d, err)
	}
}

// oneNode starts a node and an Up cluster named name on it.
func (e *env) oneNode(t *testing.T, name string, opts sshnode.Options) *sshnode.Node {
	t.Helper()
	key := userKey(t, sshnode.KeyEd25519)
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, key.AuthorizedKey)
	n := sshnode.StartT(t, opts)
	e.create(t, name, byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, name, rh.PhaseUp)
	return n
}

// swapGateway stops the env's gateway and starts another with cfg, as a
// gateway restart or upgrade would.
func (e *env) swapGateway(t *testing.T, adjust func(*sshgateway.Config)) {
	t.Helper()
	e.gw.Stop()
	e.prom = prometheus.NewRegistry()
	cfg := gatewayConfig(t, e.log, e.prom)
	adjust(&cfg)
	gw, err := sshgateway.Start(context.Background(), e.ns.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	t.Cleanup(gw.Stop)
}

func (e *env) live(t *testing.T, name string) api.NodeLive {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	l, err := e.cl.LiveStatus(ctx, name, "")
	if err != nil || len(l.Nodes) != 1 {
		t.Fatalf("live status: %+v, %v", l, err)
	}
	return l.Nodes[0]
}

// rhcli runs the real CLI in-process against the env's NATS.
func (e *env) rhcli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"RH_NATS_URL": e.ns.URL, "HOME": t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := cli.Run(ctx, args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// The agent is placed once per version: a second gateway (a restart) finds
// it in place; a gateway of another version places its own (an upgrade).
// Status shows the version and uptime, through the SDK and rhcli.
func TestAgentPlacedOnceUpgradedAndShown(t *testing.T) {
	t.Parallel()
	// Versions unique to this run: with -count=2 the first run's binaries are
	// still in the home directory.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	v1, v2 := testAgentVersion+"-"+run+"-v1", testAgentVersion+"-"+run+"-v2"
	e := startWith(t, func(c *sshgateway.Config) { c.AgentVersion = v1 })
	n := e.oneNode(t, "ag", sshnode.Options{})
	// Live status waits for a placement still going on: on a busy machine
	// the cluster can be Up (probe done) before the upload is.
	nl := e.live(t, "ag")
	if nl.Agent != api.AgentRunning || nl.AgentVersion != v1 || nl.AgentPID <= 1 || nl.MemoryTotal == 0 || nl.DiskTotal == 0 {
		t.Fatalf("live = %+v", nl)
	}
	if up, reused := counter(t, e.prom, "rh_ssh_agent_placements_total", "uploaded"), counter(t, e.prom, "rh_ssh_agent_placements_total", "reused"); up != 1 || reused != 0 {
		t.Fatalf("first contact: uploaded %v, reused %v; want 1, 0", up, reused)
	}
	p1 := filepath.Join(n.Home(), agent.InstallDir, "rhcli-"+v1)
	st1, err := os.Stat(p1)
	if err != nil {
		t.Fatal(err)
	}

	// Restart: the binary is in place; nothing is uploaded.
	e.swapGateway(t, func(c *sshgateway.Config) { c.AgentVersion = v1 })
	res, err := e.cl.Run(context.Background(), "ag", "echo again", client.RunOptions{})
	if err != nil || res[0].Stdout != "again\n" {
		t.Fatalf("run after restart: %+v, %v", res, err)
	}
	if up, reused := counter(t, e.prom, "rh_ssh_agent_placements_total", "uploaded"), counter(t, e.prom, "rh_ssh_agent_placements_total", "reused"); up != 0 || reused != 1 {
		t.Fatalf("second contact: uploaded %v, reused %v; want 0, 1", up, reused)
	}
	if st, _ := os.Stat(p1); !st.ModTime().Equal(st1.ModTime()) {
		t.Fatalf("%s was rewritten", p1)
	}

	// Upgrade: a gateway of another version places and runs its own.
	e.swapGateway(t, func(c *sshgateway.Config) { c.AgentVersion = v2 })
	if nl := e.live(t, "ag"); nl.Agent != api.AgentRunning || nl.AgentVersion != v2 {
		t.Fatalf("after upgrade: %+v", nl)
	}
	if up := counter(t, e.prom, "rh_ssh_agent_placements_total", "uploaded"); up != 1 {
		t.Fatalf("upgrade uploaded %v times; want 1", up)
	}

	// rhcli cluster status shows the live section; restart-agent restarts.
	code, out, stderr := e.rhcli(t, "cluster", "status", "ag")
	if code != 0 || !strings.Contains(out, "Live:") || !strings.Contains(out, v2) || !strings.Contains(out, "Memory:") {
		t.Fatalf("cluster status: exit %d\n%s\n%s", code, out, stderr)
	}
	old := e.live(t, "ag").AgentPID
	code, out, stderr = e.rhcli(t, "cluster", "restart-agent", "ag")
	if code != 0 || !strings.Contains(out, api.AgentRunning) || strings.Contains(out, " "+strconv.Itoa(old)+" ") {
		t.Fatalf("restart-agent: exit %d\n%s\n%s", code, out, stderr)
	}
	if nl := e.live(t, "ag"); nl.AgentPID == old || nl.Agent != api.AgentRunning || nl.AgentRestarts != 1 {
		t.Fatalf("after restart-agent: %+v (old pid %d)", nl, old)
	}
}

// An agent killed on the node comes back by itself, and commands keep
// working; cancelling a command through the agent kills its process group;
// running commands show in the live status.
func TestAgentRestartedAfterKillAndCancelKillsGroup(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.oneNode(t, "kill", sshnode.Options{})
	pid := e.live(t, "kill").AgentPID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Nothing asks the gateway: the restart happens in the background.
	eventually(t, 20*time.Second, "background restart", func() error {
		if n := counter(t, e.prom, "rh_ssh_agent_restarts_total", "died"); n != 1 {
			return fmt.Errorf("%v restarts", n)
		}
		return nil
	})
	nl := e.live(t, "kill")
	if nl.Agent != api.AgentRunning || nl.AgentPID == pid {
		t.Fatalf("after kill -9: %+v (old pid %d)", nl, pid)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pids := make(chan int, 1)
	done := make(chan error, 1)
	var res []client.RunResult
	go func() {
		var err error
		var buf []byte
		var mu sync.Mutex
		res, err = e.cl.Run(ctx, "kill", `sleep 1000 & echo "$!"; wait`, client.RunOptions{OnOutput: func(_, _ string, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			buf = append(buf, b...)
			if bytes.HasSuffix(buf, []byte("\n")) {
				p, _ := strconv.Atoi(strings.TrimSpace(string(buf)))
				pids <- p
			}
		}})
		done <- err
	}()
	var sleepPID int
	select {
	case sleepPID = <-pids:
	case <-time.After(20 * time.Second):
		t.Fatal("the command never started")
	}
	if nl := e.live(t, "kill"); len(nl.Runs) != 1 || nl.Runs[0].PID <= 1 || !strings.Contains(nl.Runs[0].Command, "sleep 1000") {
		t.Fatalf("running commands in status: %+v", nl.Runs)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].ExitCode != -1 {
		t.Fatalf("cancelled run = %+v, %v", res, err)
	}
	eventually(t, 10*time.Second, "remote sleep killed", func() error {
		if syscall.Kill(sleepPID, 0) == nil && !zombie(sleepPID) {
			return fmt.Errorf("pid %d still runs", sleepPID)
		}
		return nil
	})
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// A node whose home is read-only cannot take the agent: it is used over
// plain sessions and SFTP, and its status says why.
func TestAgentFallbackOnReadOnlyHome(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *sshgateway.Config) { c.AgentVersion = testAgentVersion + "-ro" })
	n := e.oneNode(t, "ro", sshnode.Options{ReadOnlyHome: true})
	c, err := e.cl.Get(context.Background(), "ro")
	if err != nil {
		t.Fatal(err)
	}
	if msg := c.Status.Nodes[0].Message; !strings.Contains(msg, "agent unavailable") || !strings.Contains(msg, "writable home") || !strings.Contains(msg, "plain SSH sessions") {
		t.Fatalf("node message = %q", msg)
	}
	if !strings.Contains(c.Status.Info["agent"], "plain SSH sessions") {
		t.Fatalf("info = %v", c.Status.Info)
	}
	nl := e.live(t, "ro")
	if nl.Agent != api.AgentUnavailable || !strings.Contains(nl.Message, "writable home") {
		t.Fatalf("live = %+v", nl)
	}
	res, err := e.cl.Run(context.Background(), "ro", "echo plain; exit 4", client.RunOptions{})
	if err != nil || res[0].Stdout != "plain\n" || res[0].ExitCode != 4 {
		t.Fatalf("run = %+v, %v", res, err)
	}
	src := t.TempDir()
	_ = os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 300<<10), 0o640)
	dst := filepath.Join(n.TempDir(t), "d")
	r, err := e.cl.Upload(context.Background(), "ro", src, dst, client.SyncOptions{})
	if err != nil || r[0].FilesSent != 1 {
		t.Fatalf("put = %+v, %v", r, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); len(b) != 300<<10 {
		t.Fatalf("put wrote %d bytes", len(b))
	}
	if n := counter(t, e.prom, "rh_ssh_agent_fallbacks_total", "cannot_run"); n != 1 {
		t.Fatalf("fallbacks = %v", n)
	}
}

// 100 commands at once on one node, through its agent, each with its own
// output and exit code.
func TestAgentHundredConcurrentRuns(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.oneNode(t, "many", sshnode.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			res, err := e.cl.Run(ctx, "many", fmt.Sprintf("echo out-%d; echo err-%d >&2; exit %d", i, i, i%7),
				client.RunOptions{Env: map[string]string{"N": strconv.Itoa(i)}})
			switch {
			case err != nil:
				errs <- fmt.Errorf("run %d: %w", i, err)
			case len(res) != 1 || res[0].ExitCode != i%7 || res[0].Stdout != fmt.Sprintf("out-%d\n", i) || res[0].Stderr != fmt.Sprintf("err-%d\n", i):
				errs <- fmt.Errorf("run %d: %q", i, fmt.Sprintf("%+v", res))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := counter(t, e.prom, "rh_ssh_agent_placements_total", "uploaded") + counter(t, e.prom, "rh_ssh_agent_placements_total", "reused"); n != 1 {
		t.Fatalf("agent placed %v times; want once", n)
	}
}

// A large file with a small change moves only the changed blocks, both ways.
func TestAgentDeltaPutGet(t *testing.T) {
	t.Parallel()
	e := start(t)
	n := e.oneNode(t, "delta", sshnode.Options{})
	ctx := context.Background()
	const size, changed = 64 << 20, 1 << 20
	src := t.TempDir()
	big := filepath.Join(src, "big.bin")
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(n.TempDir(t), "r")
	if r, err := e.cl.Upload(ctx, "delta", src, remote, client.SyncOptions{}); err != nil || r[0].BytesSent != size {
		t.Fatalf("first put = %+v, %v", r, err)
	}
	// Change 1 MiB in the middle, and the time, so the file is compared.
	_, _ = rand.Read(data[size/2 : size/2+changed])
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	up0 := counter(t, e.prom, "rh_ssh_bytes_total", "upload")
	r, err := e.cl.Upload(ctx, "delta", src, remote, client.SyncOptions{})
	if err != nil || r[0].FilesSent != 1 || r[0].BytesSent < changed || r[0].BytesSent > changed+256<<10 {
		t.Fatalf("delta put = %+v, %v", r, err)
	}
	// The literal blocks and the patch header crossed NATS, nothing more.
	if up := counter(t, e.prom, "rh_ssh_bytes_total", "upload") - up0; up > 2*changed {
		t.Fatalf("delta put uploaded %v bytes through the gateway", up)
	}
	if b, _ := os.ReadFile(filepath.Join(remote, "big.bin")); !bytes.Equal(b, data) {
		t.Fatal("remote file differs after the delta put")
	}

	// And back: a local copy as of now (made here, same content and time),
	// then a change on the node, then get.
	back := filepath.Join(t.TempDir(), "back")
	_ = os.MkdirAll(back, 0o755)
	if err := os.WriteFile(filepath.Join(back, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(remote, "big.bin"))
	_ = os.Chtimes(filepath.Join(back, "big.bin"), st.ModTime(), st.ModTime())
	_, _ = rand.Read(data[changed : 2*changed])
	if err := os.WriteFile(filepath.Join(remote, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	down0 := counter(t, e.prom, "rh_ssh_bytes_total", "download")
	r, err = e.cl.Download(ctx, "delta", remote, back, client.SyncOptions{})
	if err != nil || r[0].FilesSent != 1 || r[0].BytesSent < changed || r[0].BytesSent > changed+256<<10 {
		t.Fatalf("delta get = %+v, %v", r, err)
	}
	if down := counter(t, e.prom, "rh_ssh_bytes_total", "download") - down0; down > 2*changed {
		t.Fatalf("delta get downloaded %v bytes through the gateway", down)
	}
	if b, _ := os.ReadFile(filepath.Join(back, "big.bin")); !bytes.Equal(b, data) {
		t.Fatal("local file differs after the delta get")
	}

	// --filter rules apply (rsync style), on an agent node.
	_ = os.WriteFile(filepath.Join(src, "a.o"), []byte("obj"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "keep.o"), []byte("obj"), 0o644)
	if _, err := e.cl.Upload(ctx, "delta", src, remote, client.SyncOptions{Filter: []string{"+ keep.o", "- *.o"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(remote, "a.o")); !os.IsNotExist(err) {
		t.Fatalf("filtered file was sent: %v", err)
	}
	if _, err := os.Stat(filepath.Join(remote, "keep.o")); err != nil {
		t.Fatalf("included file was not sent: %v", err)
	}
}
