package skypilot

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func readJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string]any) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// recorder is a fake server answering every POST with a request id and
// /api/get with a canned payload file, recording what the client sent.
type recorder struct {
	mu      sync.Mutex
	bodies  map[string]map[string]any
	headers map[string]http.Header
	getFile string
	getCode int
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.headers[r.URL.Path] = r.Header.Clone()
	w.Header().Set("X-Skypilot-Request-ID", "fresh-"+r.URL.Path)
	if r.Method == http.MethodPost {
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		rc.bodies[r.URL.Path] = m
		w.Header().Set("X-Skypilot-Request-ID", "req-"+strings.TrimPrefix(r.URL.Path, "/"))
		w.Write([]byte("null"))
		return
	}
	if r.URL.Path == "/api/get" {
		b, _ := os.ReadFile(filepath.Join("testdata", rc.getFile))
		w.WriteHeader(rc.getCode)
		w.Write(b)
		return
	}
	http.NotFound(w, r)
}

func newRecorder(t *testing.T, getFile string, code int) (*recorder, *Client) {
	rc := &recorder{bodies: map[string]map[string]any{}, headers: map[string]http.Header{}, getFile: getFile, getCode: code}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	c, err := New(Config{Endpoint: srv.URL, Token: "sky_test", UserID: "ab12cd34", User: "alice", RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return rc, c
}

func TestRecordedBodiesFieldNames(t *testing.T) {
	ctx := context.Background()
	rc, c := newRecorder(t, "api_get_launch_succeeded.json", 200)
	res, err := c.Launch(ctx, LaunchRequest{ClusterName: "c", TaskYAML: "name: c\n"})
	if err != nil {
		t.Fatal(err)
	}
	if res.JobID == nil || *res.JobID != 1 || res.Handle == nil || len(res.Handle.Nodes) != 3 {
		t.Fatalf("launch result %+v", res)
	}
	if res.Handle.Nodes[0] != (NodeAddr{"10.0.0.5", "3.90.1.10", 22}) || res.Handle.Nodes[2].SSHPort != 2222 {
		t.Errorf("nodes %+v", res.Handle.Nodes)
	}
	_ = c.Down(ctx, "c", false)
	_ = c.Autostop(ctx, "c", 10, true)
	_, _ = c.Cancel(ctx, "abc")
	_, _ = c.Status(ctx, []string{"c"}, RefreshAuto)
	for path, file := range map[string]string{"/launch": "launch_body.json", "/down": "down_body.json",
		"/autostop": "autostop_body.json", "/api/cancel": "cancel_body.json", "/status": "status_body.json"} {
		want := readJSON(t, file)
		got := rc.bodies[path]
		if !reflect.DeepEqual(keys(got), keys(want)) {
			t.Errorf("%s fields %v, want %v", path, keys(got), keys(want))
		}
		if path != "/launch" && !reflect.DeepEqual(got, want) {
			t.Errorf("%s body %v, want %v", path, got, want)
		}
	}
	h := rc.headers["/launch"]
	if h.Get("X-SkyPilot-API-Version") == "" || h.Get("X-SkyPilot-Version") == "" ||
		h.Get("Authorization") != "Bearer sky_test" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
}

func TestDecodeRecordedResponses(t *testing.T) {
	ctx := context.Background()
	_, c := newRecorder(t, "api_get_launch_failed_500.json", 500)
	_, err := c.Launch(ctx, LaunchRequest{ClusterName: "c", TaskYAML: "x: 1\n"})
	var re *RequestError
	if !errors.As(err, &re) || !IsResourcesUnavailable(err) || strings.Contains(re.Message, "\x1b") {
		t.Fatalf("err %#v", err)
	}
	_, c = newRecorder(t, "api_get_status_succeeded.json", 200)
	recs, err := c.Status(ctx, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.Name != "rh-train" || r.Status != ClusterUp || r.Autostop != 30 || !r.ToDown || r.CPUs != "4.0" ||
		r.NumNodes != 3 || r.Accelerators != "{'A100': 8}" || r.Credentials == nil ||
		!strings.HasPrefix(r.Credentials.SSHPrivateKeyContent, "-----BEGIN") || r.LaunchedAt != 1733000100 {
		t.Errorf("record %+v", r)
	}
	if r.Handle == nil || r.Handle.SSHUser != "ubuntu" || r.Handle.Cloud != "AWS" || r.Handle.Region != "us-east-1" ||
		len(r.Handle.Nodes) != 3 || r.Handle.Version != 12 {
		t.Errorf("handle %+v", r.Handle)
	}
}

func TestHandleFixturesAllProtocols(t *testing.T) {
	for _, f := range []string{"handle_2node_p2", "handle_2node_p4", "handle_2node_p5", "handle_1node_docker_p4"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "internal", "pickle", "testdata", f+".b64"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := DecodeHandle(string(b))
		if err != nil || h == nil {
			t.Fatalf("%s: %v", f, err)
		}
		if strings.HasPrefix(f, "handle_1node") && (h.DockerUser != "root" || h.Nodes[0].SSHPort != 10022 || h.Cloud != "GCP") {
			t.Errorf("%s: %+v", f, h)
		}
	}
	if h, err := DecodeHandle("gAROLg=="); h != nil || err != nil {
		t.Errorf("pickled None: %v %v", h, err)
	}
}

func TestHTTPErrors(t *testing.T) {
	ctx := context.Background()
	var calls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch r.URL.Path {
		case "/down":
			if n <= 2 {
				w.WriteHeader(503)
				return
			}
			w.Header().Set("X-Request-ID", "legacy-id") // ≤ 0.8 servers
			w.Write([]byte("null"))
		case "/api/get":
			w.WriteHeader(404)
			w.Write([]byte(`{"detail": "Request 'legacy-id' not found"}`))
		case "/stop":
			w.WriteHeader(401)
		case "/autostop":
			w.WriteHeader(400)
			w.Write([]byte(`{"error": "version_mismatch", "message": "\u001b[33mtoo old\u001b[0m"}`))
		}
	}))
	defer srv.Close()
	c, _ := New(Config{Endpoint: srv.URL, RetryBase: time.Millisecond, UserID: "00000001"})
	if err := c.Down(ctx, "x", false); !errors.Is(err, ErrRequestNotFound) {
		t.Errorf("down: %v", err)
	}
	if err := c.Stop(ctx, "x", false); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), EnvToken) {
		t.Errorf("stop: %v", err)
	}
	err := c.Autostop(ctx, "x", 1, false)
	var vm *VersionMismatchError
	if !errors.Is(err, ErrVersionMismatch) || !errors.As(err, &vm) || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("autostop: %v", err)
	}
}

func TestUnavailableBoundedByContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer srv.Close()
	c, _ := New(Config{Endpoint: srv.URL, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Down(ctx, "x", false); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
}

func TestTaskYAML(t *testing.T) {
	cases := []struct {
		spec TaskSpec
		want []string
	}{
		{TaskSpec{Name: "a", InstanceType: "m5.xlarge", Provider: "aws", Region: "us-east-1", AutostopMins: -1},
			[]string{"instance_type: m5.xlarge", "infra: aws/us-east-1", "name: a"}},
		{TaskSpec{InstanceType: "A100:4", NumNodes: 2, Provider: "cheapest", AutostopMins: 30, UseSpot: true, OpenPorts: []string{"8080", "9000-9010"}},
			[]string{"accelerators: A100:4", "num_nodes: 2", "idle_minutes: 30", "down: true", "use_spot: true", "- 8080", "- 9000-9010"}},
		{TaskSpec{InstanceType: "CPU:2+", Memory: "32+", DiskSize: 100, ImageID: "docker:ubuntu:22.04", Provider: "gcp", AutostopMins: -1},
			[]string{"cpus: 2+", "memory: 32+", "disk_size: 100", "image_id: docker:ubuntu:22.04", "infra: gcp"}},
	}
	for _, c := range cases {
		y, err := TaskYAML(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(y, w) {
				t.Errorf("yaml %q lacks %q", y, w)
			}
		}
		if strings.Contains(y, "autostop") && c.spec.AutostopMins == -1 {
			t.Errorf("autostop set: %s", y)
		}
	}
	for _, bad := range []TaskSpec{{Region: "us-east-1", AutostopMins: -1}, {Provider: "ibm", AutostopMins: -1},
		{InstanceType: "A100:x", AutostopMins: -1}, {OpenPorts: []string{"99999"}, AutostopMins: -1}} {
		var se *SpecError
		if _, err := TaskYAML(bad); !errors.As(err, &se) {
			t.Errorf("%+v: err %v", bad, err)
		}
	}
}
