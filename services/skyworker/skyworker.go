// Package skyworker is the worker of on-demand clusters: it consumes the
// lifecycle intents of kind ondemand and carries them out on a SkyPilot API
// server (create → /launch, teardown → /down, update → /autostop, refresh →
// /status), reporting what it observed to the registry.
//
// Launches take minutes and SkyPilot cannot tell "the same launch again" from
// a new one, so every launch's request id is recorded in the rh_sky_requests
// bucket before the worker waits on it: a worker that dies mid-launch and is
// replaced waits on the recorded request instead of launching twice.
package skyworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// Durable is the consumer name shared by every skyworker replica.
const Durable = "skyworker"

// BucketRequests holds one launch record per cluster: which generation is
// being launched and under which SkyPilot request id.
const BucketRequests = events.BucketSkyRequests

// Config configures the worker. Zero values mean defaults.
type Config struct {
	// SkyPilot is the API client; when nil one is made from SkyPilotConfig.
	SkyPilot       *skypilot.Client
	SkyPilotConfig skypilot.Config

	worker.ServiceConfig
}

// Service is a running skyworker.
type Service struct {
	sky      *skypilot.Client
	host     *worker.Host[launchRecord]
	launches *worker.Records[launchRecord]
	log      *slog.Logger
	m        *worker.CloudMetrics
}

// Start prepares streams and buckets and starts consuming. It does not need
// the SkyPilot API server: if that is down, creates report why and retry.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	hc := cfg.Host(rh.KindOnDemand, Durable, BucketRequests, "launch.")
	sky, err := cfg.skyPilot()
	if err != nil {
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	host, err := worker.Bind[launchRecord](ctx, nc, hc)
	if err != nil {
		return nil, err
	}
	s := &Service{sky: sky, host: host, launches: host.Records, log: host.Log(), m: newMetrics(cfg.Registry)}
	if err := host.Start(ctx, s.begin, s.checkItems); err != nil {
		return nil, err
	}
	host.Go(s.probe)
	return s, nil
}

// skyPilot is the configured client, or one made from SkyPilotConfig.
func (cfg *Config) skyPilot() (*skypilot.Client, error) {
	if cfg.SkyPilot != nil {
		return cfg.SkyPilot, nil
	}
	sc := cfg.SkyPilotConfig
	if sc.RetryBudget == 0 {
		// The client retries 503s and refused connections for up to 600 s by
		// default; the event loop retries too, so give up sooner and let the
		// cluster show why.
		sc.RetryBudget = 30 * time.Second
	}
	if sc.Logger == nil {
		sc.Logger = cfg.Logger
	}
	return skypilot.New(sc)
}

// Stop ends the loop. Running handlers are interrupted; their events are
// redelivered and resume from the recorded launch.
func (s *Service) Stop() {
	s.host.Stop()
}

// SkyPilot is the API client the worker uses.
func (s *Service) SkyPilot() *skypilot.Client { return s.sky }

// probe says at start-up whether the API server answers, so a missing server
// shows in the log before the first create fails.
func (s *Service) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h, err := s.sky.Health(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return
		}
		s.log.Warn("SkyPilot API server not ready; on-demand creates will retry", "endpoint", s.sky.Endpoint(), "err", err,
			"fix", "set "+skypilot.EnvEndpoint+" or start one with `sky api start`")
		return
	}
	s.log.Info("SkyPilot API server", "endpoint", s.sky.Endpoint(), "version", h.Version, "api_version", h.APIVersion)
}

// begin prepares the call that carries out one event.
func (s *Service) begin(_ context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) (worker.Ops, error) {
	if in.Spec.OnDemand == nil {
		return nil, worker.Permanent(errors.New("skyworker: the spec has no ondemand section"))
	}
	return &call{s: s, in: in, r: r, op: op, sky: SkyName(in.Cluster), log: s.log.With("cluster", in.Cluster, "op", op, "generation", in.Generation)}, nil
}

// SkyName is the cluster's name on SkyPilot. rh names are DNS labels; SkyPilot
// also wants a letter first, so a name starting with a digit gets "rh-".
func SkyName(name string) string {
	if skypilot.ValidateClusterName(name) == nil {
		return name
	}
	return "rh-" + name
}
