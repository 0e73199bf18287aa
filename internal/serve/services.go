package serve

import (
	"context"

	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/registry"
	"github.com/rhq/rh/services/sshgateway"
)

// services are the services `rhcli serve` can run, in start order: the
// registry first (workers report to it), stopped last.
var services = []struct {
	name  string
	start Starter
}{
	{"registry", startRegistry},
	{"sshgateway", startSSHGateway},
	{"skyworker", startSkyworker},
	{"sagemakerworker", startSageMakerWorker},
}

func startRegistry(ctx context.Context, d Deps) (Service, error) {
	return registry.Start(ctx, d.NC, registry.Config{Logger: d.Logger, Registry: d.Registry, ReconcileEvery: d.Opts.ReconcileEvery, Auth: d.Auth})
}

func startSSHGateway(ctx context.Context, d Deps) (Service, error) {
	getenv := d.Opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg := sshgateway.Config{
		Logger: d.Logger, Registry: d.Registry, Auth: d.Auth,
		AllowProxyCommands: d.Opts.AllowProxyCommands,
		LendOwnIdentity:    d.Opts.LendGatewayIdentity,
		AgentSocket:        getenv("SSH_AUTH_SOCK"),
		DisableAgent:       getenv("RH_SSH_AGENT") == "off",
	}
	if d.Opts.Sim {
		// Simulated SageMaker nodes are this user's sshd processes, which
		// cannot write /opt/rh; relative to the login's home instead.
		cfg.KeepAliveDir = ".rh/sim-keepalive"
	}
	return sshgateway.Start(ctx, d.NC, cfg)
}

// workerConfig is what every cloud worker takes from serve.
func (d Deps) workerConfig() worker.ServiceConfig {
	return worker.ServiceConfig{Logger: d.Logger, Registry: d.Registry, Auth: d.Auth}
}
