// Package compose tests the compose deployment without a Docker engine: the
// Compose project's own loader reads compose.yaml, and the test checks that
// every rh process authenticates with its own user.
package compose

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/rhq/rh/internal/auth"
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
	nats := p.Services["nats"]
	if flagValue(nats.Command, "-c") != "/rh-auth/nats-server.conf" {
		t.Errorf("nats does not run from the configuration nats-config writes: %v", nats.Command)
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
var unprobed = map[string]bool{"nats-exporter": true}

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
	if img := p.Services["nats"].Image; !strings.HasPrefix(img, "nats:"+embeddedNATSVersion(t)) {
		t.Errorf("nats runs %s; rh embeds nats-server %s", img, embeddedNATSVersion(t))
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
