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
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// Durable is the consumer name shared by every skyworker replica.
const Durable = "skyworker"

// BucketRequests holds one launch record per cluster: which generation is
// being launched and under which SkyPilot request id.
const BucketRequests = "rh_sky_requests"

// Config configures the worker. Zero values mean defaults.
type Config struct {
	// SkyPilot is the API client; when nil one is made from SkyPilotConfig.
	SkyPilot       *skypilot.Client
	SkyPilotConfig skypilot.Config
	// ID names this process in reports (default "skyworker").
	ID       string
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Replicas of the rh_sky_requests bucket (1 unless NATS is a cluster).
	Replicas int

	// Event loop settings, passed to internal/worker (zero: its defaults).
	AckWait     time.Duration
	MaxDeliver  int
	Concurrency int
	RetryBase   time.Duration
}

// Service is a running skyworker.
type Service struct {
	cfg      Config
	sky      *skypilot.Client
	js       jetstream.JetStream
	launches jetstream.KeyValue
	secrets  jetstream.KeyValue
	records  jetstream.KeyValue
	log      *slog.Logger
	m        *metrics

	// hard is cancelled by Stop: handlers end at once instead of after the
	// loop's grace, and their launches resume in the next process.
	hard       context.Context
	cancelHard context.CancelFunc
	cancelRun  context.CancelFunc
	stopLoop   func()
	wg         sync.WaitGroup
}

// errStopping is the cancel cause of handlers interrupted by Stop.
var errStopping = errors.New("skyworker stopping")

// Start prepares streams and buckets and starts consuming. It does not need
// the SkyPilot API server: if that is down, creates report why and retry.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.ID == "" {
		cfg.ID = Durable
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	sky := cfg.SkyPilot
	if sky == nil {
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
		var err error
		if sky, err = skypilot.New(sc); err != nil {
			return nil, fmt.Errorf("skyworker: %w", err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	if err := events.Setup(ctx, js, events.Limits{Replicas: cfg.Replicas, EventsBytes: events.DefaultLimits().EventsBytes, StateBytes: events.DefaultLimits().StateBytes, MaxAge: events.DefaultLimits().MaxAge}); err != nil {
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	launches, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketRequests, Description: "rh skyworker: SkyPilot launch request of each cluster",
		History: 1, MaxBytes: 16 << 20, MaxValueSize: 4 << 10, TTL: 30 * 24 * time.Hour,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("skyworker: bucket %s: %w", BucketRequests, err)
	}
	secrets, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	records, err := js.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	s := &Service{cfg: cfg, sky: sky, js: js, launches: launches, secrets: secrets, records: records,
		log: cfg.Logger.With("service", "skyworker"), m: newMetrics(cfg.Registry)}
	w, err := worker.New(ctx, js, worker.Config{
		Kind: rh.KindOnDemand, Durable: Durable, ID: cfg.ID, Logger: cfg.Logger, Registry: cfg.Registry,
		AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, Concurrency: cfg.Concurrency, RetryBase: cfg.RetryBase,
	}, s.handle)
	if err != nil {
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	s.hard, s.cancelHard = context.WithCancel(context.WithoutCancel(ctx))
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancelRun = cancel
	if s.stopLoop, err = w.Start(runCtx); err != nil {
		s.cancelHard()
		cancel()
		return nil, fmt.Errorf("skyworker: %w", err)
	}
	s.wg.Go(func() { s.probe(runCtx) })
	return s, nil
}

// Stop ends the loop. Running handlers are interrupted; their events are
// redelivered and resume from the recorded launch.
func (s *Service) Stop() {
	s.cancelHard()
	s.stopLoop()
	s.cancelRun()
	s.wg.Wait()
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

func (s *Service) handle(ctx context.Context, op string, in *events.ClusterIntent, r *worker.Reporter) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.hard, func() { cancel(errStopping) })
	defer stop()
	if in.Spec.OnDemand == nil {
		return worker.Permanent(errors.New("skyworker: the spec has no ondemand section"))
	}
	c := &call{s: s, in: in, r: r, op: op, sky: SkyName(in.Cluster), log: s.log.With("cluster", in.Cluster, "op", op, "generation", in.Generation)}
	switch op {
	case events.OpCreate:
		return c.create(ctx)
	case events.OpTeardown:
		return c.teardown(ctx)
	case events.OpUpdate:
		return c.update(ctx)
	case events.OpRefresh:
		return c.refresh(ctx)
	}
	return worker.Permanent(fmt.Errorf("skyworker: unknown op %q", op))
}

// SkyName is the cluster's name on SkyPilot. rh names are DNS labels; SkyPilot
// also wants a letter first, so a name starting with a digit gets "rh-".
func SkyName(name string) string {
	if skypilot.ValidateClusterName(name) == nil {
		return name
	}
	return "rh-" + name
}
