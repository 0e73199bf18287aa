package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/secrets"
	"github.com/rhq/rh/internal/svc"
)

// Ops carries out one event on a cloud: the host calls the method of the
// event's op. Each follows the Handler contract: nil acks the event, an error
// wrapped by Permanent fails the cluster, any other error is retried.
type Ops interface {
	Create(ctx context.Context) error
	Teardown(ctx context.Context) error
	Update(ctx context.Context) error
	Refresh(ctx context.Context) error
}

// Begin checks an event's intent (its spec has the kind's section, the
// cloud's client for it exists) and returns what carries out its op. An
// error ends the event as a handler's would.
type Begin func(ctx context.Context, op string, in *events.ClusterIntent, r *Reporter) (Ops, error)

// ErrStopping is the cancel cause of handlers a Host's Stop interrupts.
var ErrStopping = errors.New("stopping")

// HostConfig configures a Host. Zero values mean defaults.
type HostConfig struct {
	// Config is the event loop's; its Durable also names the service in logs
	// and errors.
	Config
	// Bucket holds the kind's records (see Records), one per cluster under
	// KeyPrefix; like every stream and bucket it is made by `rhcli serve`
	// (events.Setup) and only bound here.
	Bucket    string
	KeyPrefix string
	// Auth says who asks the check endpoint; nil treats every caller NATS
	// let in as the operator (check reveals no secrets).
	Auth *auth.Authenticator
}

// Check reports what a worker sees from where it runs (its region and
// credentials, its cloud's API server), for `rhcli check`.
type Check func(ctx context.Context) []api.CheckItem

// Host is what every cloud worker is besides its cloud calls: it binds the
// streams, the kind's records bucket, the secret store and the cluster
// records, runs the event loop, and hands each event to the kind's Ops.
//
// Stop interrupts running handlers at once rather than after the loop's
// grace: their events are redelivered and resume from the kind's records in
// the next process.
type Host[T any] struct {
	cfg HostConfig
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
	// Records are the kind's records of what it asked its cloud for.
	Records *Records[T]
	// Secrets holds each cluster's SSH key.
	Secrets  *secrets.Store
	clusters jetstream.KeyValue

	hard       context.Context // cancelled by Stop, with cause stopping
	cancelHard context.CancelCauseFunc
	run        context.Context // cancelled by Stop: background tasks end
	cancelRun  context.CancelFunc
	stopLoop   func()
	check      micro.Service
	wg         sync.WaitGroup
}

// Bind prepares streams and buckets; Start begins consuming.
func Bind[T any](ctx context.Context, nc *nats.Conn, cfg HostConfig) (*Host[T], error) {
	cfg.defaults()
	name := cfg.Durable
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := events.Check(ctx, js); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: bucket %s: %w", name, cfg.Bucket, err)
	}
	sec, err := secrets.Open(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	clusters, err := js.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	h := &Host[T]{cfg: cfg, nc: nc, js: js, log: cfg.Logger.With("service", name),
		Records: NewRecords[T](kv, cfg.KeyPrefix), Secrets: sec, clusters: clusters}
	// Replicas share cfg.ID; the owner of a record must name this process.
	h.Records.own(cfg.ID+"/"+uuid.NewString()[:8], cfg.StaleAfter, h.log)
	h.hard, h.cancelHard = context.WithCancelCause(context.WithoutCancel(ctx))
	h.run, h.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	return h, nil
}

// Start begins consuming and returns once the consumer exists. Each event
// goes to begin, then to the Ops method of its op. check answers the kind's
// check endpoint (rh.api.check.<kind>), served until Stop; nil serves none.
func (h *Host[T]) Start(ctx context.Context, begin Begin, check Check) error {
	w, err := New(ctx, h.js, h.cfg.Config, func(ctx context.Context, op string, in *events.ClusterIntent, r *Reporter) error {
		return h.handle(ctx, op, in, r, begin)
	})
	if err == nil {
		h.stopLoop, err = w.Start(h.run)
	}
	if err == nil && check != nil {
		h.check, err = svc.ServeCheck(ctx, h.nc, h.log, h.cfg.Auth, h.cfg.Kind, h.cfg.ID, check)
	}
	if err != nil {
		h.Stop()
		return fmt.Errorf("%s: %w", h.cfg.Durable, err)
	}
	return nil
}

// Go runs f until Stop, which cancels its ctx and waits for it.
func (h *Host[T]) Go(f func(ctx context.Context)) {
	h.wg.Go(func() { f(h.run) })
}

// Stop ends the loop and the background tasks. Running handlers are
// interrupted; their events are redelivered. Calling it again does nothing.
func (h *Host[T]) Stop() {
	if h.check != nil {
		_ = h.check.Stop()
	}
	h.cancelHard(fmt.Errorf("%s %w", h.cfg.Durable, ErrStopping))
	if h.stopLoop != nil {
		h.stopLoop()
	}
	h.cancelRun()
	h.wg.Wait()
}

// Log is the worker's logger, naming its service.
func (h *Host[T]) Log() *slog.Logger { return h.log }

func (h *Host[T]) handle(ctx context.Context, op string, in *events.ClusterIntent, r *Reporter, begin Begin) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(h.hard, func() { cancel(context.Cause(h.hard)) })
	defer stop()
	// Records this operation saves are owned by this process and beat while
	// it runs; if another worker adopts one, the operation stops.
	hold := h.Records.hold(in.Cluster, func() { cancel(ErrTakenOver) })
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		h.Records.release(rctx, in.Cluster, hold)
	}()
	beating := make(chan struct{})
	defer close(beating)
	go h.heartbeat(ctx, in.Cluster, hold, beating)

	err := h.dispatch(ctx, op, in, r, begin)
	if errors.Is(context.Cause(ctx), ErrTakenOver) {
		return fmt.Errorf("%s: %s of %s: %w", h.cfg.Durable, op, in.Cluster, ErrTakenOver)
	}
	return err
}

// dispatch calls the Ops method of the event's op.
func (h *Host[T]) dispatch(ctx context.Context, op string, in *events.ClusterIntent, r *Reporter, begin Begin) error {
	ops, err := begin(ctx, op, in, r)
	if err != nil {
		return err
	}
	switch op {
	case events.OpCreate:
		return ops.Create(ctx)
	case events.OpTeardown:
		return ops.Teardown(ctx)
	case events.OpUpdate:
		return ops.Update(ctx)
	case events.OpRefresh:
		return ops.Refresh(ctx)
	}
	return Permanent(fmt.Errorf("%s: unknown op %q", h.cfg.Durable, op))
}

// heartbeat rewrites the operation's record every Heartbeat until done.
func (h *Host[T]) heartbeat(ctx context.Context, cluster string, hold *holding[T], done <-chan struct{}) {
	t := time.NewTicker(h.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			bctx, cancel := context.WithTimeout(ctx, h.cfg.Heartbeat)
			err := h.Records.beat(bctx, cluster, hold)
			cancel()
			if errors.Is(err, ErrLostRace) {
				h.log.Warn("another worker adopted the operation; stopping it", "cluster", cluster)
				return
			}
			if err != nil && ctx.Err() == nil {
				h.log.Warn("heartbeat not written; trying again", "cluster", cluster, "err", err)
			}
		}
	}
}

// Forget removes what rh keeps about a cluster that no longer exists on its
// cloud: the kind's record and the cluster's SSH key.
func (h *Host[T]) Forget(ctx context.Context, cluster string) error {
	if err := h.Records.Delete(ctx, cluster); err != nil {
		return fmt.Errorf("%s: %w", h.cfg.Durable, err)
	}
	if err := h.Secrets.Delete(ctx, cluster); err != nil {
		return fmt.Errorf("%s: %w", h.cfg.Durable, err)
	}
	return nil
}

// Cluster reads the registry's record of a cluster (an rh not-found error
// when there is none).
func (h *Host[T]) Cluster(ctx context.Context, name string) (*rh.Cluster, error) {
	c, _, err := events.LoadCluster(ctx, h.clusters, name)
	return c, err
}

// RecordedPhase is the cluster's phase in the registry's record; a deleted
// cluster counts as Terminated.
func (h *Host[T]) RecordedPhase(ctx context.Context, name string) (rh.Phase, error) {
	c, err := h.Cluster(ctx, name)
	if rh.ErrorCode(err) == rh.ENOTFOUND {
		return rh.PhaseTerminated, nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", h.cfg.Durable, err)
	}
	return c.Status.Phase, nil
}

// ServiceConfig is the part of every cloud worker's Config that is not about
// its cloud; the worker's Config embeds it.
type ServiceConfig struct {
	// ID names this process in reports (default: the loop's).
	ID string
	// Auth says who asks the check endpoint; nil treats every caller NATS
	// let in as the operator (check reveals no secrets).
	Auth     *auth.Authenticator
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Worker tunes the event loop (Kind, Durable, ID, Logger and Registry
	// are set from the kind and the fields above); zero values are its
	// defaults.
	Worker Config
}

// Defaults fills in the logger and the metrics registry.
func (c *ServiceConfig) Defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

// Host returns the Host configuration of kind's worker, consuming as
// durable, with its records in bucket under keyPrefix.
func (c *ServiceConfig) Host(kind rh.Kind, durable, bucket, keyPrefix string) HostConfig {
	c.Defaults()
	loop := c.Worker
	loop.Kind, loop.Durable, loop.ID, loop.Logger, loop.Registry = kind, durable, c.ID, c.Logger, c.Registry
	return HostConfig{Config: loop, Bucket: bucket, KeyPrefix: keyPrefix, Auth: c.Auth}
}
