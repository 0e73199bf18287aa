package serve

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/services/sagemakerworker"
	"github.com/rhq/rh/services/sagemakerworker/sm"
)

// simRole is the execution role of simulated clusters that name none; the
// simulator's account is 123456789012.
const simRole = "arn:aws:iam::123456789012:role/rh-sim"

// startSageMakerWorker runs the SageMaker worker with credentials, region and
// endpoints resolved the AWS way (AWS_PROFILE, ~/.aws, AWS_ENDPOINT_URL_*),
// or with --sim against an in-process SageMaker simulator, stopped after the
// worker. Missing credentials do not stop rh from starting: creates say why.
func startSageMakerWorker(ctx context.Context, d Deps) (Service, error) {
	cfg := sagemakerworker.Config{Getenv: d.Opts.Getenv, ServiceConfig: d.workerConfig()}
	if !d.Opts.Sim {
		w, err := sagemakerworker.Start(ctx, d.NC, cfg)
		if err != nil {
			return nil, err
		}
		return w, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sagemakerworker --sim: find rhcli for the proxy command: %w", err)
	}
	sim, err := startSageMakerSim(ctx, d.Logger)
	if err != nil {
		return nil, err
	}
	// Static fake credentials: the simulator checks that requests are SigV4
	// signed for the right service, not by whom.
	awsCfg := aws.Config{Region: sm.DefaultRegion, Credentials: credentials.NewStaticCredentialsProvider("AKIDRHSIMULATOR", "rh-sim-secret", "")}
	cfg.Client = sm.NewClient(awsCfg, sm.Options{SageMakerEndpoint: sim.URL, STSEndpoint: sim.URL, IAMEndpoint: sim.URL, SageMakerConfigPaths: []string{}, Logger: d.Logger})
	cfg.DefaultRole = simRole
	proxy := sshx.ShellQuote(exe) + " sim ssm-proxy --endpoint " + sshx.ShellQuote(sim.URL) + " --target %h"
	cfg.ProxyCommand = func(string) string { return proxy }
	// Simulated nodes are sshd processes accepting the harness's plain
	// user (see internal/simnodes), not root containers.
	cfg.SSHUser = sshnode.DefaultUser()
	cfg.PollMin, cfg.PollMax = 200*time.Millisecond, 2*time.Second
	w, err := sagemakerworker.Start(ctx, d.NC, cfg)
	if err != nil {
		sim.Stop()
		return nil, err
	}
	return stopAll{w.Stop, sim}, nil
}
