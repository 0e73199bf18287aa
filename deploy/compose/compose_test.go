// Package compose tests the compose deployment without a Docker engine: the
// Compose project's own loader reads compose.yaml, and the test checks that
// every rh process authenticates with its own user.
package compose

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/cli"
)

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	wd, _ := os.Getwd()
	details := types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(wd, "compose.yaml")}},
		Environment: types.Mapping{"HOME": "/home/someone", "GRAFANA_ADMIN_PASSWORD": "from-the-environment"},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) { o.SetProjectName("rh", true) })
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func flagValue(cmd []string, flag string) string {
	if i := slices.Index(cmd, flag); i >= 0 && i+1 < len(cmd) {
		return cmd[i+1]
	}
	return ""
}

func TestEveryServiceAuthenticatesWithItsOwnUser(t *testing.T) {
	p := loadProject(t)
	seen := map[string]bool{}
	for name, s := range p.Services {
		cmd := []string(s.Command)
		if len(cmd) == 0 || cmd[0] != "serve" {
			continue
		}
		svc := flagValue(cmd, "--services")
		if strings.Contains(svc, ",") || svc == "" {
			t.Errorf("%s runs %q: one service per container, each with its own user", name, svc)
			continue
		}
		seen[svc] = true
		if want := "/rh-auth/" + auth.ServiceCredsFile(svc); flagValue(cmd, "--creds") != want {
			t.Errorf("%s connects with --creds %q, want %q", name, flagValue(cmd, "--creds"), want)
		}
		if slices.Contains(cmd, "--insecure-nats") {
			t.Errorf("%s runs with --insecure-nats", name)
		}
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Source == "rh-auth" && v.ReadOnly }) {
			t.Errorf("%s does not mount the rh-auth volume read-only", name)
		}
		if _, ok := s.DependsOn["rh-config"]; !ok {
			t.Errorf("%s does not wait for rh-config", name)
		}
	}
	for _, want := range []string{auth.SvcRegistry, auth.SvcSSHGateway, auth.SvcSkyWorker, auth.SvcSageMakerWorker} {
		if !seen[want] {
			t.Errorf("no container runs %s", want)
		}
	}
	reg := p.Services["registry"]
	if flagValue(reg.Command, "--users") != "/rh-auth/users.json" {
		t.Errorf("the registry does not record the bootstrap admin (--users)")
	}
	cfg := p.Services["rh-config"]
	if len(cfg.Command) == 0 || cfg.Command[0] != "nats-config" || flagValue(cfg.Command, "--dir") != "/rh-auth" {
		t.Errorf("rh-config does not write /rh-auth: %v", cfg.Command)
	}
}

// oneShots exit when done: no healthcheck, restarted only on failure.
var oneShots = map[string]bool{"rh-config": true}

// unprobed images have nothing inside to probe them with (a lone binary);
// Prometheus watches them (up == 0 alerts).
var unprobed = map[string]bool{"nats-exporter-1": true, "nats-exporter-2": true, "nats-exporter-3": true}

func TestEveryServiceIsPinnedHealthcheckedAndRestarted(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		repo, tag, ok := strings.Cut(s.Image, ":")
		if !ok || tag == "" || tag == "latest" || repo == "" {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		hc := s.HealthCheck
		switch {
		case oneShots[name] || unprobed[name]:
			if hc == nil || !hc.Disable {
				t.Errorf("%s: its healthcheck should be disabled explicitly, saying why", name)
			}
		case hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD":
			t.Errorf("%s: no healthcheck (CMD form): %+v", name, hc)
		case hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil:
			t.Errorf("%s: healthcheck without interval, timeout and retries", name)
		}
		want := "unless-stopped"
		if oneShots[name] {
			want = "on-failure"
		}
		if s.Restart != want {
			t.Errorf("%s: restart %q, want %q", name, s.Restart, want)
		}
	}
	// External images at the versions rh is tested with; NATS is the server rh embeds.
	for _, name := range natsNodes {
		if img := p.Services[name].Image; !strings.HasPrefix(img, "nats:"+embeddedNATSVersion(t)) {
			t.Errorf("%s runs %s; rh embeds nats-server %s", name, img, embeddedNATSVersion(t))
		}
	}
}

// embeddedNATSVersion is the nats-server version in go.mod, without the v.
func embeddedNATSVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "github.com/nats-io/nats-server/v2" {
			return strings.TrimPrefix(f[1], "v")
		}
	}
	t.Fatal("go.mod names no nats-server")
	return ""
}

func TestRHServicesAreBuiltHereAndProbeThemselves(t *testing.T) {
	p := loadProject(t)
	for _, name := range []string{"rh-config", "registry", "sshgateway", "skyworker", "sagemakerworker"} {
		s := p.Services[name]
		if s.Build == nil || s.Build.Dockerfile != "deploy/compose/Dockerfile" || s.Build.Target == "" {
			t.Errorf("%s: not built from deploy/compose/Dockerfile with a target: %+v", name, s.Build)
		}
		if s.User == "" || strings.HasPrefix(s.User, "0") || strings.HasPrefix(s.User, "root") {
			t.Errorf("%s: runs as %q, want a non-root user", name, s.User)
		}
		if name == "rh-config" {
			continue
		}
		if got := s.HealthCheck.Test; len(got) < 4 || got[1] != "/usr/local/bin/rhcli" || got[2] != "health" || !strings.HasSuffix(got[3], ":9090/readyz") {
			t.Errorf("%s: healthcheck %v does not ask rhcli health for /readyz", name, got)
		}
		if flagValue(s.Command, "--http-addr") != ":9090" {
			t.Errorf("%s: does not serve /metrics on :9090 for Prometheus", name)
		}
	}
	if got := p.Services["sshgateway"].Build.Target; got != "gateway" {
		t.Errorf("sshgateway is built from target %q; its proxy commands need the gateway image (shell, aws, session-manager-plugin)", got)
	}
	// Mounted credentials land where os.UserHomeDir looks: $HOME is /home/rh.
	for _, name := range []string{"sshgateway", "sagemakerworker"} {
		s := p.Services[name]
		if h := s.Environment["HOME"]; h == nil || *h != "/home/rh" {
			t.Errorf("%s: HOME is not /home/rh", name)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && strings.HasPrefix(v.Source, "/home/someone/") {
				if !strings.HasPrefix(v.Target, "/home/rh/") || !v.ReadOnly {
					t.Errorf("%s: mounts %s at %s (read-only %v); want read-only under /home/rh", name, v.Source, v.Target, v.ReadOnly)
				}
			}
		}
	}
	for _, name := range []string{"sshgateway", "skyworker"} {
		if !slices.Contains(p.Services[name].ExtraHosts["host.docker.internal"], "host-gateway") {
			t.Errorf("%s: host.docker.internal does not resolve on Linux without extra_hosts host-gateway", name)
		}
	}
}

func TestPrometheusAlertmanagerAndGrafana(t *testing.T) {
	p := loadProject(t)
	prom := p.Services["prometheus"]
	for _, f := range []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"} {
		if !slices.Contains(prom.Command, f) {
			t.Errorf("prometheus: no %s in %v", f, prom.Command)
		}
	}
	if !slices.ContainsFunc(prom.Command, func(a string) bool { return strings.HasPrefix(a, "--storage.tsdb.retention.time=") }) {
		t.Errorf("prometheus: no retention flag in %v", prom.Command)
	}
	mounts := map[string]types.ServiceVolumeConfig{}
	for _, v := range prom.Volumes {
		mounts[v.Target] = v
	}
	if v, ok := mounts["/prometheus"]; !ok || v.Type != types.VolumeTypeVolume {
		t.Errorf("prometheus: its data (/prometheus) is not on a named volume")
	}
	if v, ok := mounts["/etc/prometheus"]; !ok || !strings.HasSuffix(v.Source, "/prometheus") {
		t.Errorf("prometheus: the prometheus/ directory (config and rules) is not mounted at /etc/prometheus")
	}
	if _, ok := p.Services["alertmanager"]; !ok {
		t.Errorf("no alertmanager")
	}
	g := p.Services["grafana"].Environment
	if v := g["GF_AUTH_ANONYMOUS_ENABLED"]; v == nil || *v != "false" {
		t.Errorf("grafana: anonymous access is not off")
	}
	if _, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  p.WorkingDir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(p.WorkingDir, "compose.yaml")}},
		Environment: types.Mapping{"HOME": "/home/someone"},
	}, func(o *loader.Options) { o.SetProjectName("rh", true) }); err == nil {
		t.Errorf("grafana: compose loads without GRAFANA_ADMIN_PASSWORD; the admin password must be set, not defaulted")
	}
	for _, v := range p.Services {
		for _, vol := range v.Volumes {
			if vol.Type == types.VolumeTypeVolume {
				if _, ok := p.Volumes[vol.Source]; !ok {
					t.Errorf("volume %s is not declared", vol.Source)
				}
			}
		}
	}
}

func TestNoTopLevelName(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "name:") {
			t.Errorf("compose.yaml has a top-level name, which docker-compose 1.x refuses")
		}
	}
}

// natsNodes are the servers of the stack's NATS cluster.
var natsNodes = []string{"nats-1", "nats-2", "nats-3"}

// The stack's NATS is a three-node JetStream cluster and rh keeps three
// replicas of everything on it: each node's configuration, read by
// nats-server's own parser over what `rhcli nats-config` writes, names the
// node, routes to all three and keeps its own store; every rh service knows
// all three servers, waits for them, and runs with --replicas 3.
func TestNATSIsAThreeNodeClusterWithReplicas3(t *testing.T) {
	p := loadProject(t)
	// The layout inside the nats containers: ./nats at /etc/nats, the
	// rh-auth volume (what rh-config writes) at /rh-auth.
	root := t.TempDir()
	etc, authDir := filepath.Join(root, "etc", "nats"), filepath.Join(root, "rh-auth")
	cfg := p.Services["rh-config"]
	args := append(slices.Clone([]string(cfg.Command)), "--dir", authDir) // the last --dir wins
	if code := cli.Run(context.Background(), args, cli.IO{Out: io.Discard, Err: io.Discard}); code != 0 {
		t.Fatalf("rh-config's command %v exits %d", args, code)
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	stores := map[string]string{}
	for _, name := range natsNodes {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		conf := flagValue(s.Command, "-c")
		if conf != "/etc/nats/"+name+".conf" {
			t.Fatalf("%s runs from %q, want /etc/nats/%s.conf", name, conf, name)
		}
		mounts := map[string]types.ServiceVolumeConfig{}
		for _, v := range s.Volumes {
			mounts[v.Target] = v
		}
		if v := mounts["/etc/nats"]; !v.ReadOnly || !strings.HasSuffix(v.Source, "/deploy/compose/nats") {
			t.Errorf("%s: ./nats is not mounted read-only at /etc/nats: %+v", name, v)
		}
		if v := mounts["/rh-auth"]; v.Source != "rh-auth" || !v.ReadOnly {
			t.Errorf("%s: the rh-auth volume is not mounted read-only at /rh-auth", name)
		}
		data := mounts["/data"]
		if data.Type != types.VolumeTypeVolume {
			t.Errorf("%s: its store (/data) is not on a named volume", name)
		}
		if other, dup := stores[data.Source]; dup {
			t.Errorf("%s and %s share the store volume %s", name, other, data.Source)
		}
		stores[data.Source] = name
		if hc := s.HealthCheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "8222/healthz") {
			t.Errorf("%s: its healthcheck does not ask /healthz (JetStream current): %+v", name, hc)
		}
		b, err := os.ReadFile(filepath.Join("nats", name+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, name+".conf"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := server.ProcessConfigFile(filepath.Join(etc, name+".conf"))
		if err != nil {
			t.Fatalf("%s's configuration does not load: %v", name, err)
		}
		if o.ServerName != name || o.Cluster.Name != "rh" || o.Cluster.Port != 6222 || !o.Cluster.NoAdvertise {
			t.Errorf("%s: server %q in cluster %q on route port %d (no_advertise %v)", name, o.ServerName, o.Cluster.Name, o.Cluster.Port, o.Cluster.NoAdvertise)
		}
		var routes []string
		for _, r := range o.Routes {
			routes = append(routes, r.Host)
		}
		if want := []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"}; !slices.Equal(routes, want) {
			t.Errorf("%s routes to %v, want %v", name, routes, want)
		}
		// What rh-config wrote still holds: JetStream on /data, encrypted,
		// with rh's accounts; monitoring reachable by the exporter beside it.
		if !o.JetStream || o.StoreDir != "/data" || o.JetStreamKey == "" || len(o.Accounts) < 2 || o.Port != 4222 {
			t.Errorf("%s: jetstream %v store %q encrypted %v accounts %d port %d", name, o.JetStream, o.StoreDir, o.JetStreamKey != "", len(o.Accounts), o.Port)
		}
		if o.HTTPHost != "0.0.0.0" || o.HTTPPort != 8222 {
			t.Errorf("%s: monitoring on %s:%d; the exporter in another container cannot reach 127.0.0.1", name, o.HTTPHost, o.HTTPPort)
		}
		exp := p.Services["nats-exporter-"+strings.TrimPrefix(name, "nats-")]
		if len(exp.Command) == 0 || exp.Command[len(exp.Command)-1] != "http://"+name+":8222" {
			t.Errorf("no exporter beside %s: %v", name, exp.Command)
		}
	}
	for name, s := range p.Services {
		cmd := []string(s.Command)
		if len(cmd) == 0 || cmd[0] != "serve" {
			continue
		}
		if flagValue(cmd, "--replicas") != "3" {
			t.Errorf("%s runs without --replicas 3: %v", name, cmd)
		}
		var want []string
		for _, n := range natsNodes {
			want = append(want, "nats://"+n+":4222")
		}
		if got := strings.Split(flagValue(cmd, "--nats"), ","); !slices.Equal(got, want) {
			t.Errorf("%s joins %v, want every server: %v", name, got, want)
		}
		for _, n := range natsNodes {
			if d, ok := s.DependsOn[n]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", name, n)
			}
		}
	}
	// Clients on the host reach every server.
	for i, name := range natsNodes {
		ports := p.Services[name].Ports
		if len(ports) != 1 || ports[0].HostIP != "127.0.0.1" || ports[0].Published != strconv.Itoa(4222+i) || ports[0].Target != 4222 {
			t.Errorf("%s publishes %+v, want 127.0.0.1:%d->4222", name, ports, 4222+i)
		}
	}
}
