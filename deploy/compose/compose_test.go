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
		Environment: types.Mapping{"HOME": "/home/someone"},
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
