// Package sagemakerworker is the worker of SageMaker clusters: it consumes the
// lifecycle intents of kind sagemaker and carries them out as training jobs
// (create → CreateTrainingJob and follow it to Training, teardown →
// StopTrainingJob and follow it to Stopped, refresh → DescribeTrainingJob),
// reporting what it observed to the registry.
//
// A SageMaker "cluster" is one long-running training job. A compute backend
// runs the keep-alive entry point (sshd plus an idle autostop) and is Up once
// the job reaches Training; an estimator cluster runs the user's training
// workload and is followed to its end (Completed → Terminated, Failed →
// Failed), each secondary-status transition showing in the cluster's history.
//
// Job names are deterministic (sm.JobName) and recorded in the rh_sm_jobs
// bucket before the job is created, so a retried or redelivered create — or a
// worker that dies mid-create and is replaced — adopts the job it already
// asked for instead of starting a second one, and a teardown always knows
// which job to stop.
package sagemakerworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/sagemakerworker/sm"
)

// Durable is the consumer name shared by every sagemakerworker replica.
const Durable = "sagemakerworker"

// BucketJobs holds one job record per cluster: which generation runs under
// which training job.
const BucketJobs = events.BucketSMJobs

// DefaultSSHUser is the account SageMaker containers run as.
const DefaultSSHUser = "root"

// Config configures the worker. Zero values mean defaults.
type Config struct {
	// Client talks to SageMaker for every cluster (tests and --sim). When
	// nil, one is made from the environment with sm.LoadConfig(Profile,
	// Region) and ClientOptions, and clusters naming another profile or
	// region get their own.
	Client        *sm.Client
	ClientOptions sm.Options
	Profile       string
	Region        string
	// ProxyCommand returns the SSH ProxyCommand of a node whose address is
	// the SSM target; default sm.SSMProxyCommand with the cluster's profile
	// and region. `--sim` points it at `rhcli sim ssm-proxy`.
	ProxyCommand func(target string) string
	// DefaultRole is used when a cluster names no role, before sm's own
	// defaults (RH_SAGEMAKER_ROLE, the SageMaker SDK's config file); --sim
	// sets the simulator's account role so no configuration is needed.
	DefaultRole string
	// Getenv is how the SageMaker clients read the caller's environment
	// (RH_SAGEMAKER_ROLE, SAGEMAKER_*_CONFIG_OVERRIDE), unless
	// ClientOptions.Getenv is set; nil reads none. `rhcli serve` passes
	// os.Getenv.
	Getenv func(string) string
	// SSHUser is the account nodes accept (default DefaultSSHUser).
	SSHUser string
	// PollMin and PollMax bound the interval between DescribeTrainingJob
	// calls while a job is followed: it starts at PollMin after each change
	// and doubles up to PollMax while nothing changes (default 2 s, 30 s).
	PollMin time.Duration
	PollMax time.Duration

	worker.ServiceConfig
}

// Service is a running sagemakerworker.
type Service struct {
	nc   *nats.Conn
	cfg  Config
	sm   *sm.Client
	host *worker.Host[jobRecord]
	jobs *worker.Records[jobRecord]
	log  *slog.Logger
	m    *worker.CloudMetrics

	clientsMu sync.Mutex
	clients   map[string]*sm.Client // by profile and region, when Config.Client is nil
}

// Start prepares streams and buckets and starts consuming. It needs no AWS
// answer to start: credentials are resolved lazily, and a create that cannot
// reach AWS is retried.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	hc := cfg.Host(rh.KindSageMaker, Durable, BucketJobs, "job.")
	cfg.defaults()
	client := cfg.Client
	if client == nil {
		awsCfg, err := sm.LoadConfig(ctx, cfg.Profile, cfg.Region)
		if err != nil {
			return nil, fmt.Errorf("sagemakerworker: %w", err)
		}
		client = sm.NewClient(awsCfg, cfg.ClientOptions)
	}
	host, err := worker.Bind[jobRecord](ctx, nc, hc)
	if err != nil {
		return nil, err
	}
	s := &Service{nc: nc, cfg: cfg, sm: client, host: host, jobs: host.Records, log: host.Log(),
		m: newMetrics(cfg.Registry), clients: map[string]*sm.Client{}}
	if err := host.Start(ctx, s.begin, s.checkItems); err != nil {
		return nil, err
	}
	s.log.Info("SageMaker worker started", "region", client.Region())
	return s, nil
}

func (cfg *Config) defaults() {
	cfg.Defaults()
	if cfg.SSHUser == "" {
		cfg.SSHUser = DefaultSSHUser
	}
	if cfg.PollMin <= 0 {
		cfg.PollMin = 2 * time.Second
	}
	if cfg.PollMax < cfg.PollMin {
		cfg.PollMax = max(30*time.Second, cfg.PollMin)
	}
	if cfg.ClientOptions.Logger == nil {
		cfg.ClientOptions.Logger = cfg.Logger
	}
	if cfg.ClientOptions.Getenv == nil {
		cfg.ClientOptions.Getenv = cfg.Getenv
	}
}

// Stop ends the loop. Running handlers are interrupted; their events are
// redelivered and adopt the job already created.
func (s *Service) Stop() {
	s.host.Stop()
}

// Client is the default SageMaker client.
func (s *Service) Client() *sm.Client { return s.sm }

// clientFor returns the client of a cluster's profile and region: the
// configured one when it was given (tests, --sim) or when the cluster names
// neither; otherwise one per profile and region, made once.
func (s *Service) clientFor(ctx context.Context, profile, region string) (*sm.Client, error) {
	if s.cfg.Client != nil || (profile == "" || profile == s.cfg.Profile) && (region == "" || region == s.sm.Region()) {
		return s.sm, nil
	}
	key := profile + "\x00" + region
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if c, ok := s.clients[key]; ok {
		return c, nil
	}
	if profile == "" {
		profile = s.cfg.Profile
	}
	awsCfg, err := sm.LoadConfig(ctx, profile, region)
	if err != nil {
		return nil, err
	}
	c := sm.NewClient(awsCfg, s.cfg.ClientOptions)
	s.clients[key] = c
	return c, nil
}

// begin prepares the call that carries out one event.
func (s *Service) begin(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) (worker.Ops, error) {
	sp := in.Spec.SageMaker
	if sp == nil {
		return nil, worker.Permanent(errors.New("sagemakerworker: the spec has no sagemaker section"))
	}
	cli, err := s.clientFor(ctx, sp.Profile, sp.Region)
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("sagemakerworker: %w", err))
	}
	return &call{s: s, in: in, sp: sp, r: r, op: op, cli: cli,
		log: s.log.With("cluster", in.Cluster, "op", op, "generation", in.Generation)}, nil
}
