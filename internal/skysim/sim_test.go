package skysim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// fakeNodes hands out made-up endpoints and records releases.
type fakeNodes struct {
	mu       sync.Mutex
	live     map[string]int
	released map[string]int
}

func (f *fakeNodes) Provision(ctx context.Context, cluster string, n int) ([]Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var eps []Endpoint
	for i := 0; i < n; i++ {
		eps = append(eps, Endpoint{InternalIP: fmt.Sprintf("10.0.0.%d", 10+i), ExternalIP: fmt.Sprintf("127.0.0.%d", 10+i),
			SSHPort: 2200 + i, SSHUser: "sky", PrivateKeyPEM: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n")})
	}
	f.live[cluster] = n
	return eps, nil
}

func (f *fakeNodes) Release(ctx context.Context, cluster string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, cluster)
	f.released[cluster]++
	return nil
}

func setup(t *testing.T, opts Options) (*Server, *skypilot.Client, *fakeNodes, string) {
	t.Helper()
	nodes := &fakeNodes{live: map[string]int{}, released: map[string]int{}}
	if opts.Nodes == nil {
		opts.Nodes = nodes
	}
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	c, err := skypilot.New(skypilot.Config{Endpoint: srv.URL, UserID: "ab12cd34", User: "alice", Token: opts.Token,
		RetryBase: 2 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c, nodes, srv.URL
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func yamlFor(t *testing.T, spec skypilot.TaskSpec) string {
	y, err := skypilot.TaskYAML(spec)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func TestLaunchStatusReuseDown(t *testing.T) {
	sim, c, nodes, _ := setup(t, Options{Token: "sky_tok"})
	ctx := ctxT(t)
	if _, err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	y := yamlFor(t, skypilot.TaskSpec{Name: "c1", NumNodes: 3, InstanceType: "m5.xlarge", Provider: "aws", Region: "us-west-2", AutostopMins: -1})
	res, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "c1", TaskYAML: y})
	if err != nil {
		t.Fatal(err)
	}
	if res.JobID != nil || res.Handle == nil || len(res.Handle.Nodes) != 3 || res.Handle.Nodes[0].SSHPort != 2200 || res.Handle.Region != "us-west-2" {
		t.Fatalf("launch %+v / %+v", res, res.Handle)
	}
	if _, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "c1", TaskYAML: y}); err != nil {
		t.Fatal(err)
	}
	if sim.Provisions() != 1 || sim.CountRequests("sky.launch") != 2 {
		t.Fatalf("provisions %d launches %d", sim.Provisions(), sim.CountRequests("sky.launch"))
	}
	recs, err := c.Status(ctx, []string{"c1", "nope"}, skypilot.RefreshNone)
	if err != nil || len(recs) != 1 {
		t.Fatalf("status %v %v", recs, err)
	}
	r := recs[0]
	if r.Status != skypilot.ClusterUp || r.Handle == nil || r.Handle.SSHUser != "sky" || r.Credentials == nil ||
		!strings.Contains(r.Credentials.SSHPrivateKeyContent, "PRIVATE KEY") || r.NumNodes != 3 || r.Autostop != -1 {
		t.Fatalf("record %+v handle %+v", r, r.Handle)
	}
	if err := c.Down(ctx, "c1", false); err != nil {
		t.Fatal(err)
	}
	if nodes.released["c1"] != 1 {
		t.Errorf("released %v", nodes.released)
	}
	if err := c.Down(ctx, "c1", false); !skypilot.IsClusterDoesNotExist(err) {
		t.Fatalf("second down: %v", err)
	}
}

func TestInvalidYAMLFailsAfterAccept(t *testing.T) {
	_, c, _, _ := setup(t, Options{})
	_, err := c.Launch(ctxT(t), skypilot.LaunchRequest{ClusterName: "c", TaskYAML: "resources:\n  instance_typ: m5.xlarge\n"})
	if !skypilot.IsInvalidConfig(err) || !strings.Contains(err.Error(), "did you mean 'resources.instance_type'") {
		t.Fatalf("err %v", err)
	}
}

func TestQuotaFailureRemovesRecord(t *testing.T) {
	sim, c, _, _ := setup(t, Options{})
	ctx := ctxT(t)
	sim.FailNextLaunches(1)
	y := yamlFor(t, skypilot.TaskSpec{InstanceType: "A100:8", AutostopMins: -1})
	if _, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "q", TaskYAML: y}); !skypilot.IsResourcesUnavailable(err) {
		t.Fatalf("err %v", err)
	}
	if recs, _ := c.Status(ctx, nil, skypilot.RefreshNone); len(recs) != 0 {
		t.Fatalf("record left: %+v", recs)
	}
	if _, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "q", TaskYAML: y}); err != nil {
		t.Fatal(err)
	}
	if sim.Provisions() != 1 {
		t.Fatal("want one provision")
	}
}

func TestCancelMidProvisionLeavesInit(t *testing.T) {
	sim, c, _, _ := setup(t, Options{LaunchLatency: time.Hour})
	ctx := ctxT(t)
	id, err := c.SubmitLaunch(ctx, skypilot.LaunchRequest{ClusterName: "slow", TaskYAML: "name: slow\n"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "INIT", func() bool { return sim.ClusterState("slow") == "INIT" })
	if got, err := c.Cancel(ctx, id[:8]); err != nil || len(got) != 1 {
		t.Fatalf("cancel %v %v", got, err)
	}
	if _, err := c.WaitLaunch(ctx, id); !errors.Is(err, skypilot.ErrRequestCancelled) {
		t.Fatalf("wait: %v", err)
	}
	recs, _ := c.Status(ctx, []string{"slow"}, skypilot.RefreshAuto)
	if len(recs) != 1 || recs[0].Status != skypilot.ClusterInit {
		t.Fatalf("records %+v", recs)
	}
	if err := c.Down(ctx, "slow", false); err != nil {
		t.Fatal(err)
	}
}

func TestAutostopDownAndStaleCache(t *testing.T) {
	sim, c, nodes, _ := setup(t, Options{AutostopMinute: 20 * time.Millisecond})
	ctx := ctxT(t)
	y := yamlFor(t, skypilot.TaskSpec{AutostopMins: -1})
	if _, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "a", TaskYAML: y}); err != nil {
		t.Fatal(err)
	}
	if err := c.Autostop(ctx, "a", 2, true); err != nil {
		t.Fatal(err)
	}
	recs, _ := c.Status(ctx, []string{"a"}, "")
	if len(recs) != 1 || recs[0].Autostop != 2 || !recs[0].ToDown {
		t.Fatalf("autostop not reported: %+v", recs)
	}
	testkit.Eventually(t, 10*time.Second, "autostop", func() bool { return sim.ClusterState("a") == "" })
	recs, _ = c.Status(ctx, []string{"a"}, skypilot.RefreshNone)
	if len(recs) != 1 {
		t.Fatal("cache should lag until refresh")
	}
	recs, _ = c.Status(ctx, []string{"a"}, skypilot.RefreshForce)
	if len(recs) != 0 {
		t.Fatalf("after refresh: %+v", recs)
	}
	nodes.mu.Lock()
	defer nodes.mu.Unlock()
	if nodes.released["a"] != 1 {
		t.Fatal("nodes not released")
	}
}

func TestYAMLAutostopAndRetriesThrough503(t *testing.T) {
	sim, c, _, _ := setup(t, Options{})
	ctx := ctxT(t)
	sim.Unavailable503(3)
	y := yamlFor(t, skypilot.TaskSpec{AutostopMins: 45})
	if _, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "s", TaskYAML: y}); err != nil {
		t.Fatal(err)
	}
	recs, _ := c.Status(ctx, nil, "")
	if len(recs) != 1 || recs[0].Autostop != 45 || !recs[0].ToDown {
		t.Fatalf("%+v", recs)
	}
	sim.Unavailable503For(time.Hour)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Status(short, nil, ""); !errors.Is(err, skypilot.ErrUnavailable) {
		t.Fatalf("storm: %v", err)
	}
}

func TestLostRequestVanishes(t *testing.T) {
	sim, _, _, url := setup(t, Options{})
	c, _ := skypilot.New(skypilot.Config{Endpoint: url, UserID: "ab12cd34", PollStatus: true, PollInterval: 5 * time.Millisecond})
	sim.LoseNextRequests(1, 50*time.Millisecond)
	_, err := c.Launch(ctxT(t), skypilot.LaunchRequest{ClusterName: "l", TaskYAML: "name: l\n"})
	if !errors.Is(err, skypilot.ErrRequestNotFound) {
		t.Fatalf("err %v", err)
	}
}

func TestWaitingHiddenFromOldClients(t *testing.T) {
	sim, c, _, url := setup(t, Options{LaunchLatency: time.Hour})
	ctx := ctxT(t)
	first, _ := c.SubmitLaunch(ctx, skypilot.LaunchRequest{ClusterName: "w", TaskYAML: "name: w\n"})
	testkit.Eventually(t, 10*time.Second, "INIT", func() bool { return sim.ClusterState("w") == "INIT" })
	second, _ := c.SubmitLaunch(ctx, skypilot.LaunchRequest{ClusterName: "w", TaskYAML: "name: w\n"})
	testkit.Eventually(t, 10*time.Second, "WAITING", func() bool {
		rs, err := c.RequestStatuses(ctx, second)
		return err == nil && len(rs) == 1 && rs[0].Status == skypilot.StatusWaiting
	})
	old, _ := skypilot.New(skypilot.Config{Endpoint: url, UserID: "ab12cd34", APIVersion: 40})
	rs, err := old.RequestStatuses(ctx, second)
	if err != nil || rs[0].Status != skypilot.StatusRunning {
		t.Fatalf("old client sees %+v %v", rs, err)
	}
	tooOld, _ := skypilot.New(skypilot.Config{Endpoint: url, UserID: "ab12cd34", APIVersion: 3})
	if _, err := tooOld.RequestStatuses(ctx, second); !errors.Is(err, skypilot.ErrVersionMismatch) {
		t.Fatalf("too old: %v", err)
	}
	if _, err := c.Cancel(ctx, first, second); err != nil {
		t.Fatal(err)
	}
}

func TestProtocolQuirks(t *testing.T) {
	_, c, _, url := setup(t, Options{})
	ctx := ctxT(t)
	// 422 for a non-JSON body; fresh request id on every response.
	resp, err := http.Post(url+"/launch", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 422 || resp.Header.Get("X-Skypilot-Request-ID") == "" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// env_vars without SKYPILOT_USER_ID → 500.
	resp, _ = http.Post(url+"/status", "application/json", strings.NewReader(`{"env_vars": {}}`))
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := c.Get(ctx, "zzzz-unknown"); !errors.Is(err, skypilot.ErrRequestNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	for i := 0; i < 20; i++ {
		if _, err := c.Status(ctx, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	// 20 uuids share 1-char prefixes: some prefix is ambiguous.
	var ambiguous bool
	for _, p := range "0123456789abcdef" {
		resp, _ := http.Get(url + "/api/get?request_id=" + string(p))
		resp.Body.Close()
		ambiguous = ambiguous || resp.StatusCode == 400
	}
	if !ambiguous {
		t.Fatal("no ambiguous prefix answered 400")
	}
	clouds, err := c.EnabledClouds(ctx)
	if err != nil || len(clouds) != 1 || clouds[0] != "AWS" {
		t.Fatalf("clouds %v %v", clouds, err)
	}
	if raw, err := c.Check(ctx, nil); err != nil || !json.Valid(raw) {
		t.Fatalf("check %s %v", raw, err)
	}
}

// TestHandleLoadsInCPython feeds the simulator's pickled handle to Python
// with the stand-in classes of internal/pickle/testdata/gen_fixtures.py.
func TestHandleLoadsInCPython(t *testing.T) {
	_, c, _, _ := setup(t, Options{})
	ctx := ctxT(t)
	res, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "py", TaskYAML: yamlFor(t, skypilot.TaskSpec{NumNodes: 2, Provider: "aws", AutostopMins: -1})})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Status(ctx, []string{"py"}, "")
	if err != nil || len(recs) != 1 {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "../pickle/testdata/gen_fixtures.py", "load")
	cmd.Stdin = strings.NewReader(recs[0].RawHandle + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got struct {
		ClusterName string     `json:"cluster_name"`
		IPs         [][]string `json:"stable_internal_external_ips"`
		Ports       []int      `json:"stable_ssh_ports"`
		SSHUser     string     `json:"ssh_user"`
		Cloud       string     `json:"cloud"`
		Version     int        `json:"version"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.ClusterName != "py" || len(got.IPs) != 2 || got.IPs[0][1] != res.Handle.Nodes[0].External ||
		got.Ports[1] != res.Handle.Nodes[1].SSHPort || got.SSHUser != "sky" || got.Cloud != "sky.clouds.aws.AWS" || got.Version != 12 {
		t.Fatalf("python saw %+v", got)
	}
}

// TestClientDeclaresItsVersionOnEveryRequest: the client sends both
// version headers on every request, /api/health included, and the server
// (real or simulated) negotiates from them: it echoes its own versions only
// to a client that declared both, and a client that declares none is served
// as an old one (WAITING shown as RUNNING), as SkyPilot's middleware does.
func TestClientDeclaresItsVersionOnEveryRequest(t *testing.T) {
	sim, c, _, url := setup(t, Options{})
	ctx := ctxT(t)
	if _, err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Launch(ctx, skypilot.LaunchRequest{ClusterName: "v", TaskYAML: "name: v\n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckClouds(ctx); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, x := range sim.Exchanges() {
		paths[x.Path] = true
		if x.APIVersion != fmt.Sprint(skypilot.DefaultAPIVersion) || x.Version != skypilot.DefaultVersion {
			t.Errorf("%s %s declared API %q version %q", x.Method, x.Path, x.APIVersion, x.Version)
		}
	}
	for _, p := range []string{"/api/health", "/launch", "/api/get", "/check", "/api/stream"} {
		if !paths[p] {
			t.Errorf("no request to %s in %v", p, paths)
		}
	}
	if api, ver := c.ServerVersion(); api != 90 || ver != "0.14.0" {
		t.Errorf("server version learnt = %d %q", api, ver)
	}
	// Without the headers the server does not negotiate: no versions echoed.
	resp, err := http.Get(url + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-SkyPilot-API-Version") != "" {
		t.Errorf("versions echoed to a client that declared none")
	}
	// A non-integer API version is a server error, as in SkyPilot.
	req, _ := http.NewRequest(http.MethodGet, url+"/api/health", nil)
	req.Header.Set("X-SkyPilot-API-Version", "ninety")
	req.Header.Set("X-SkyPilot-Version", "0.14.0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("non-integer API version: HTTP %d", resp.StatusCode)
	}
}

// TestCheckSaysWhyCloudsAreDisabled: the check request's log (read through
// /api/stream) gives each disabled cloud's reason, continuation lines and all.
func TestCheckSaysWhyCloudsAreDisabled(t *testing.T) {
	_, c, _, _ := setup(t, Options{EnabledClouds: []string{"AWS", "Kubernetes"},
		DisabledReasons: map[string]string{"Azure": "Azure CLI returned error: token expired"}})
	cc, err := c.CheckClouds(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cc.Enabled, ",") != "AWS,Kubernetes" {
		t.Errorf("enabled = %v", cc.Enabled)
	}
	want := map[string]string{
		"Azure":  "Azure CLI returned error: token expired",
		"GCP":    "GCP tools are not installed. Run the following commands: $ pip install google-api-python-client $ conda install -c conda-forge google-cloud-sdk -y",
		"Lambda": "Failed to access Lambda Cloud with credentials.",
	}
	if len(cc.Disabled) != 3 {
		t.Errorf("disabled = %q", cc.Disabled)
	}
	for cloud, reason := range want {
		if !strings.HasPrefix(cc.Disabled[cloud], reason) {
			t.Errorf("%s: reason %q, want %q", cloud, cc.Disabled[cloud], reason)
		}
	}
}
