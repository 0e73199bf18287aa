// Package registry is the single writer of cluster records. It answers the
// registry API (create, get, list, up, teardown, delete, autostop, events,
// refresh), publishes lifecycle intents for the workers, applies their state
// reports with compare-and-set, keeps each cluster's history, and reconciles:
// it re-publishes intents no worker has observed and asks workers to refresh
// live clusters every period.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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

// Version is the registry's micro service version.
const Version = "0.1.0"

// Source is the CloudEvents source of the registry's events.
const Source = "rh/registry"

// Config configures the registry.
type Config struct {
	// ReconcileEvery is the refresh period: drift shows in status within it.
	ReconcileEvery time.Duration
	// IntentRetryAfter is how long an unobserved intent waits before it is
	// published again.
	IntentRetryAfter time.Duration
	Logger           *slog.Logger
	Registry         prometheus.Registerer
	// Auth says who each request comes from; nil treats every caller as the
	// operator (a NATS without rh's accounts).
	Auth *auth.Authenticator
	// WatchHeartbeat is the most a watch stream stays silent (default and
	// most: api.WatchHeartbeat, which clients count on); WatchMaxDuration
	// ends each stream (default api.WatchMaxDuration), after which the
	// client asks again.
	WatchHeartbeat   time.Duration
	WatchMaxDuration time.Duration
	// ReportAckWait is the lease on a state report the registry pulled
	// (default 5 s), renewed every third of it until the report is applied:
	// the reports a registry that died had pulled are applied by its
	// replacement within about this long.
	ReportAckWait time.Duration
}

func (c *Config) defaults() {
	if c.ReconcileEvery == 0 {
		c.ReconcileEvery = 30 * time.Second
	}
	if c.IntentRetryAfter == 0 {
		c.IntentRetryAfter = c.ReconcileEvery
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Auth == nil {
		c.Auth = auth.Insecure()
	}
	if c.WatchHeartbeat <= 0 || c.WatchHeartbeat > api.WatchHeartbeat {
		c.WatchHeartbeat = api.WatchHeartbeat
	}
	if c.WatchMaxDuration <= 0 {
		c.WatchMaxDuration = api.WatchMaxDuration
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.ReportAckWait <= 0 {
		c.ReportAckWait = DefaultReportAckWait
	}
}

// DefaultReportAckWait is the default Config.ReportAckWait.
const DefaultReportAckWait = 5 * time.Second

// Service is a running registry.
type Service struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	records jetstream.KeyValue
	secrets *secrets.Store
	users   jetstream.KeyValue
	usersMu sync.Mutex // serialises user removals (the last-admin rule)
	log     *slog.Logger
	m       *metrics

	cache *recordCache

	intake jetstream.KeyValue // rh_intake: requests from event publishers (intake.go)
	im     *intakeMetrics
	// instance names this registry process as the owner of the intake
	// follows it reports; following holds their keys, and followSeen what
	// it last saw of others' (adoptFollows).
	instance   string
	followsMu  sync.Mutex
	following  map[string]bool
	followSeen map[string]followSighting
	runCtx     context.Context

	// unpublished holds the clusters whose intent publish failed, which the
	// reconcile loop retries within seconds (reconcile.go).
	unpublished unpublishedIntents

	svc    micro.Service
	cancel context.CancelFunc
	wg     sync.WaitGroup
	now    func() time.Time
}

// Start sets up streams and buckets, starts the API, the state consumer, the
// dead-letter watcher and the reconciler.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := events.Check(ctx, js); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	records, err := js.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	secretsKV, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	users, err := events.UsersBucket(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	s := &Service{cfg: cfg, nc: nc, js: js, records: records, secrets: secrets.New(secretsKV), users: users, log: cfg.Logger.With("service", "registry"), m: newMetrics(cfg.Registry), now: time.Now, cache: newRecordCache(),
		unpublished: unpublishedIntents{names: map[string]struct{}{}, kick: make(chan struct{}, 1)}}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.runCtx = cancel, runCtx
	s.instance, s.following = "registry-"+uuid.NewString(), map[string]bool{}
	if err := s.watchRecords(runCtx); err != nil {
		cancel()
		return nil, err
	}
	if err := s.startAPI(runCtx); err != nil {
		cancel()
		return nil, err
	}
	if err := s.startStateConsumer(runCtx); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.startIntake(runCtx); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.watchDeadLetters(runCtx); err != nil {
		s.Stop()
		return nil, err
	}
	s.wg.Go(func() { s.reconcileLoop(runCtx) })
	return s, nil
}

// Stop stops the API and the loops; pending requests finish first.
func (s *Service) Stop() {
	if s.svc != nil {
		_ = s.svc.Stop()
	}
	s.cancel()
	s.wg.Wait()
}

func (s *Service) startAPI(ctx context.Context) error {
	sv, err := micro.AddService(s.nc, micro.Config{
		Name: api.RegistryService, Version: Version, Description: "rh cluster registry",
	})
	if err != nil {
		return fmt.Errorf("registry: micro: %w", err)
	}
	s.svc = sv
	g := sv.AddGroup(api.RegistryPrefix)
	add := func(name string, h micro.Handler) error {
		if err := g.AddEndpoint(name, svc.CountRequests(s.m.requests, name, h)); err != nil {
			return fmt.Errorf("registry: endpoint %s: %w", name, err)
		}
		return nil
	}
	ug := sv.AddGroup(api.UsersPrefix)
	addUsers := func(name string, h micro.Handler) error {
		// Endpoint names are unique per service: users.add, not add.
		if err := ug.AddEndpoint("users-"+name, svc.CountRequests(s.m.requests, "users_"+name, h), micro.WithEndpointSubject(name)); err != nil {
			return fmt.Errorf("registry: endpoint users.%s: %w", name, err)
		}
		return nil
	}
	return errors.Join(
		add(api.OpCreate, svc.Handle(ctx, s.log, s.cfg.Auth, s.Create)),
		add(api.OpGet, svc.Handle(ctx, s.log, s.cfg.Auth, s.Get)),
		add(api.OpList, svc.Handle(ctx, s.log, s.cfg.Auth, s.List)),
		add(api.OpUp, svc.Handle(ctx, s.log, s.cfg.Auth, s.Up)),
		add(api.OpTeardown, svc.Handle(ctx, s.log, s.cfg.Auth, s.Teardown)),
		add(api.OpDelete, svc.Handle(ctx, s.log, s.cfg.Auth, s.Delete)),
		add(api.OpAutostop, svc.Handle(ctx, s.log, s.cfg.Auth, s.Autostop)),
		add(api.OpEvents, svc.Handle(ctx, s.log, s.cfg.Auth, s.Events)),
		add(api.OpRefresh, svc.Handle(ctx, s.log, s.cfg.Auth, s.Refresh)),
		add(api.OpShare, svc.Handle(ctx, s.log, s.cfg.Auth, s.Share)),
		add(api.OpUnshare, svc.Handle(ctx, s.log, s.cfg.Auth, s.Unshare)),
		addUsers(api.OpUserAdd, svc.Handle(ctx, s.log, s.cfg.Auth, s.AddUser)),
		addUsers(api.OpUserList, svc.Handle(ctx, s.log, s.cfg.Auth, s.ListUsers)),
		addUsers(api.OpUserRemove, svc.Handle(ctx, s.log, s.cfg.Auth, s.RemoveUser)),
		add(api.OpWhoami, s.whoami()),
		s.addWatch(ctx, sv),
		s.addWatchList(ctx, sv),
	)
}

// Create validates and stores a new cluster and publishes its create intent.
func (s *Service) Create(ctx context.Context, req api.CreateRequest) (*api.ClusterReply, error) {
	caller := auth.CallerFrom(ctx)
	if err := caller.CanCreate(); err != nil {
		return nil, err
	}
	if err := rh.ValidateName(req.Name); err != nil {
		return nil, err
	}
	if err := validRequestID(req.RequestID); err != nil {
		return nil, err
	}
	spec := req.Spec
	spec.Normalize()
	if spec.Kind == rh.KindBYO && spec.BYO != nil && req.Secrets != nil {
		spec.BYO.HasKey = req.Secrets.SSHPrivateKey != ""
		spec.BYO.HasPassword = req.Secrets.Password != ""
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if !req.Secrets.Empty() && spec.Kind != rh.KindBYO {
		return nil, rh.Invalid("secrets", "only byo clusters take an SSH key or password; rh makes the keys of %s clusters", spec.Kind)
	}
	now := s.now().UTC()
	c := &rh.Cluster{
		Name: req.Name, Spec: spec, Generation: 1, Incarnation: 1, Owner: caller.User, CreateRequestID: req.RequestID,
		Intent:    rh.Intent{Op: events.OpCreate, Generation: 1, At: now},
		Status:    rh.Status{Phase: rh.PhasePending, Message: fmt.Sprintf("waiting for the %s worker", spec.Kind)},
		CreatedAt: now, UpdatedAt: now,
	}
	c.History = []rh.Transition{{At: now, Generation: 1, To: rh.PhasePending, Message: "created", Source: Source}}
	if req.NoUp {
		// Defined: no intent, so neither a worker nor the reconciler acts
		// until an up starts the first incarnation.
		msg := fmt.Sprintf("defined, not launched: rhcli cluster up %s", c.Name)
		c.Incarnation, c.Intent = 0, rh.Intent{}
		c.Status = rh.Status{Phase: rh.PhaseDefined, Message: msg}
		c.History = []rh.Transition{{At: now, Generation: 1, To: rh.PhaseDefined, Message: msg, Source: Source}}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("registry: encode %s: %w", c.Name, err)
	}
	// The record first: its compare-and-set decides who created the name, so a
	// losing create never touches the winner's secrets. The intent is published
	// only after the secrets are stored, so no worker looks for them too early.
	rev, err := s.records.Create(ctx, events.ClusterKey(c.Name), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return s.createAgain(ctx, req, caller)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: store %s: %w", c.Name, err)
	}
	s.cache.put(c.Name, cloneCluster(c), rev)
	if !req.Secrets.Empty() {
		if err := s.secrets.Put(ctx, c.Name, *req.Secrets); err != nil {
			_ = s.records.Delete(ctx, events.ClusterKey(c.Name), jetstream.LastRevision(rev))
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	if !req.NoUp {
		s.publishIntent(ctx, c)
	}
	return &api.ClusterReply{Cluster: c}, nil
}

// createAgain answers a create whose name is taken. When the caller made the
// cluster with this very request (its earlier attempt was not answered: the
// registry died with it, or the answer was lost), the answer is the cluster,
// and what that attempt may not have finished is finished: the secrets
// stored, the intent published (its deterministic id makes a repeat a
// no-op). Anyone else, and any other request, gets the conflict. Who is
// calling comes from the server, never from the request, so another user
// replaying the request id learns nothing.
func (s *Service) createAgain(ctx context.Context, req api.CreateRequest, caller rh.Caller) (*api.ClusterReply, error) {
	exists := rh.Conflict("cluster %q already exists", req.Name)
	if req.RequestID == "" {
		return nil, exists
	}
	c, _, err := s.load(ctx, req.Name)
	if rh.ErrorCode(err) == rh.ENOTFOUND {
		return nil, exists // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	if c.CreateRequestID != req.RequestID || c.Owner != caller.User {
		return nil, exists
	}
	if !req.Secrets.Empty() {
		stored, _, err := s.secrets.Get(ctx, c.Name)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		if stored == nil {
			if err := s.secrets.Put(ctx, c.Name, *req.Secrets); err != nil {
				return nil, fmt.Errorf("registry: %w", err)
			}
		}
	}
	if c.Intent.Op == events.OpCreate && c.Intent.Generation == c.Generation && c.Status.ObservedGeneration < c.Generation {
		s.publishIntent(ctx, c)
	}
	s.log.Info("create answered again: the caller's retry of its own request", "cluster", c.Name, "request_id", req.RequestID)
	return &api.ClusterReply{Cluster: c}, nil
}

// validRequestID checks a create's request id: optional, short, plain.
func validRequestID(id string) error {
	if len(id) > api.MaxRequestID {
		return rh.Invalid("request_id", "%d characters, at most %d", len(id), api.MaxRequestID)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == ':' || r == '-') {
			return rh.Invalid("request_id", "%q is not allowed: use letters, digits and . _ : -", r)
		}
	}
	return nil
}

// Get returns one record.
func (s *Service) Get(ctx context.Context, req api.NameRequest) (*api.ClusterReply, error) {
	c, _, err := s.loadFor(ctx, req.Name, rh.AccessRead)
	if err != nil {
		return nil, err
	}
	return &api.ClusterReply{Cluster: c}, nil
}

// List returns one page of the summaries of the clusters the caller may
// read, in name order, each page small enough for NATS's payload limit.
func (s *Service) List(ctx context.Context, req api.ListRequest) (*listReply, error) {
	limit := req.Limit
	if limit <= 0 || limit > api.MaxListPage {
		limit = api.MaxListPage
	}
	caller := auth.CallerFrom(ctx)
	visible := func(c *rh.Cluster) bool { return caller.Can(c, rh.AccessRead) }
	page, last, more := s.cache.summaryPage(req.After, limit, api.MaxListBytes, visible)
	r := &listReply{Clusters: page}
	if r.Clusters == nil {
		r.Clusters = []json.RawMessage{}
	}
	if more {
		r.Next = last
	}
	return r, nil
}

// listReply is api.ListReply with the summaries already encoded.
type listReply struct {
	Clusters []json.RawMessage `json:"clusters"`
	Next     string            `json:"next,omitempty"`
}

// RawJSON assembles the reply from the cached encodings.
func (r *listReply) RawJSON() []byte {
	size := 32 + len(r.Next)
	for _, c := range r.Clusters {
		size += len(c) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"clusters":[`...)
	for i, c := range r.Clusters {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c...)
	}
	b = append(b, ']')
	if r.Next != "" {
		next, _ := json.Marshal(r.Next)
		b = append(b, `,"next":`...)
		b = append(b, next...)
	}
	return append(b, '}')
}

// Up brings a stopped, failed or terminated cluster up again. It is a no-op
// for a cluster that is already coming up or up.
func (s *Service) Up(ctx context.Context, req api.NameRequest) (*api.ClusterReply, error) {
	c, err := s.mutate(ctx, req.Name, func(c *rh.Cluster) (bool, error) {
		if err := auth.CallerFrom(ctx).Check(c, rh.AccessWrite); err != nil {
			return false, err
		}
		switch c.Status.Phase {
		case rh.PhasePending, rh.PhaseProvisioning, rh.PhaseUp, rh.PhaseDegraded:
			return false, nil
		case rh.PhaseTearingDown:
			return false, rh.Conflict("cluster %q is tearing down; run up again once it is Terminated", c.Name)
		}
		s.newIncarnation(c, events.OpCreate, rh.PhasePending, "up requested")
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.publishIntent(ctx, c)
	return &api.ClusterReply{Cluster: c}, nil
}

// Teardown asks the worker to release the cluster's machines (for byo: to
// close its connections; your machines are never touched).
func (s *Service) Teardown(ctx context.Context, req api.NameRequest) (*api.ClusterReply, error) {
	c, err := s.mutate(ctx, req.Name, func(c *rh.Cluster) (bool, error) {
		if err := auth.CallerFrom(ctx).Check(c, rh.AccessWrite); err != nil {
			return false, err
		}
		if c.Status.Phase == rh.PhaseTerminated || c.Status.Phase == rh.PhaseTearingDown || c.Status.Phase == rh.PhaseDefined {
			return false, nil // nothing runs to release
		}
		s.newIncarnation(c, events.OpTeardown, rh.PhaseTearingDown, "teardown requested")
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.publishIntent(ctx, c)
	return &api.ClusterReply{Cluster: c}, nil
}

// Delete removes a record and its secrets once nothing can be left running.
func (s *Service) Delete(ctx context.Context, req api.DeleteRequest) (*struct{}, error) {
	c, rev, err := s.loadFor(ctx, req.Name, rh.AccessWrite)
	if err != nil {
		return nil, err
	}
	if !req.Force {
		switch {
		case c.Status.Phase == rh.PhaseTerminated:
		case c.Status.Phase == rh.PhaseFailed && c.Spec.Kind == rh.KindBYO:
		case c.Status.Phase == rh.PhaseFailed:
			return nil, rh.Conflict("cluster %q failed; tear it down first so no machine is left behind (or delete --force)", c.Name)
		default:
			return nil, rh.Conflict("cluster %q is %s; tear it down first (or delete --force)", c.Name, c.Status.Phase)
		}
	}
	if err := s.records.Delete(ctx, events.ClusterKey(c.Name), jetstream.LastRevision(rev)); err != nil {
		if events.IsCASConflict(err) {
			return nil, rh.Conflict("cluster %q changed while deleting; try again", c.Name)
		}
		return nil, fmt.Errorf("registry: delete %s: %w", c.Name, err)
	}
	s.cache.put(c.Name, nil, rev+1)
	if err := s.secrets.Delete(ctx, c.Name); err != nil {
		s.log.Warn("cannot purge secrets", "cluster", c.Name, "err", err)
	}
	return &struct{}{}, nil
}

// Autostop changes the cluster's autostop and tells its worker.
func (s *Service) Autostop(ctx context.Context, req api.AutostopRequest) (*api.ClusterReply, error) {
	if req.Minutes < -1 {
		return nil, rh.Invalid("minutes", "%d is below -1 (-1 means never)", req.Minutes)
	}
	c, err := s.mutate(ctx, req.Name, func(c *rh.Cluster) (bool, error) {
		if err := auth.CallerFrom(ctx).Check(c, rh.AccessWrite); err != nil {
			return false, err
		}
		if c.Spec.Kind == rh.KindBYO && req.Minutes != -1 {
			return false, rh.Invalid("minutes", "byo clusters have no autostop: rh never stops machines it does not own")
		}
		if c.Spec.Autostop() == req.Minutes {
			return false, nil
		}
		c.Spec.AutostopMins = new(req.Minutes)
		c.Generation++
		c.Intent = rh.Intent{Op: events.OpUpdate, Generation: c.Generation, At: s.now().UTC()}
		s.record(c, c.Status.Phase, fmt.Sprintf("autostop set to %d minutes", req.Minutes))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if c.Intent.Op == events.OpUpdate && c.Status.Phase.Live() {
		s.publishIntent(ctx, c)
	}
	return &api.ClusterReply{Cluster: c}, nil
}

// Events returns the cluster's history.
func (s *Service) Events(ctx context.Context, req api.NameRequest) (*api.EventsReply, error) {
	c, _, err := s.loadFor(ctx, req.Name, rh.AccessRead)
	if err != nil {
		return nil, err
	}
	return &api.EventsReply{History: c.History}, nil
}

// Refresh asks the worker to observe the cluster now; the answer arrives as a
// state report, which callers may wait for on the record.
func (s *Service) Refresh(ctx context.Context, req api.NameRequest) (*api.ClusterReply, error) {
	c, _, err := s.loadFor(ctx, req.Name, rh.AccessWrite)
	if err != nil {
		return nil, err
	}
	if c.Status.Phase == rh.PhaseDefined {
		return &api.ClusterReply{Cluster: c}, nil // nothing launched to look at
	}
	if err := s.publish(ctx, events.OpRefresh, c, s.now().UnixNano()); err != nil {
		return nil, err
	}
	return &api.ClusterReply{Cluster: c}, nil
}

// newIncarnation starts an up or teardown: a new generation that makes every
// report about earlier ones stale.
func (s *Service) newIncarnation(c *rh.Cluster, op string, phase rh.Phase, msg string) {
	c.Generation++
	c.Incarnation = c.Generation
	c.Intent = rh.Intent{Op: op, Generation: c.Generation, At: s.now().UTC()}
	s.record(c, phase, msg)
	c.Status.Phase = phase
	c.Status.Message = msg
	c.Status.ReportedAt = time.Time{}
}

// record appends a transition to the history, keeping it bounded.
func (s *Service) record(c *rh.Cluster, to rh.Phase, msg string) {
	c.History = append(c.History, rh.Transition{At: s.now().UTC(), Generation: c.Generation, From: c.Status.Phase, To: to, Message: msg, Source: Source})
	if n := len(c.History); n > rh.MaxHistory {
		c.History = slices.Clone(c.History[n-rh.MaxHistory:])
	}
}

func (s *Service) publishIntent(ctx context.Context, c *rh.Cluster) {
	if c.Intent.Op == "" {
		return // a Defined cluster asked nothing of its worker yet
	}
	if err := s.publish(ctx, c.Intent.Op, c, 0); err != nil {
		// The record holds the intent; the reconcile loop publishes it again.
		s.log.Warn("intent not published yet; retrying", "cluster", c.Name, "op", c.Intent.Op, "err", err)
		s.unpublished.add(c.Name)
	}
}

func (s *Service) publish(ctx context.Context, op string, c *rh.Cluster, tick int64) error {
	env, err := events.NewIntent(Source, op, c, tick)
	if err != nil {
		return err
	}
	if _, err := events.Publish(ctx, s.js, events.IntentSubject(op, c.Spec.Kind), env); err != nil {
		return err
	}
	s.m.published.WithLabelValues(env.Type).Inc()
	return nil
}

// load reads one record and its revision.
func (s *Service) load(ctx context.Context, name string) (*rh.Cluster, uint64, error) {
	if err := rh.ValidateName(name); err != nil {
		return nil, 0, err
	}
	return events.LoadCluster(ctx, s.records, name)
}

// loadFor reads one record the request's caller has need on; a caller
// without it gets forbidden, and never the record.
func (s *Service) loadFor(ctx context.Context, name string, need rh.Access) (*rh.Cluster, uint64, error) {
	c, rev, err := s.load(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	if err := auth.CallerFrom(ctx).Check(c, need); err != nil {
		return nil, 0, err
	}
	return c, rev, nil
}

// all returns every record (shared snapshots: read only) in name order.
func (s *Service) all(context.Context) ([]*rh.Cluster, error) {
	return s.cache.all(), nil
}

// maxCASAttempts bounds retries of one mutation under contention.
const maxCASAttempts = 200

// mutate applies fn to the current record and writes it back with
// compare-and-set, retrying from a fresh read when another write came first.
// fn returns false to leave the record as it is.
func (s *Service) mutate(ctx context.Context, name string, fn func(*rh.Cluster) (bool, error)) (*rh.Cluster, error) {
	if err := rh.ValidateName(name); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		// The first try trusts the cache; after a lost race, read the bucket.
		c, rev, err := s.loadForUpdate(ctx, name, attempt == 0)
		if err != nil {
			return nil, err
		}
		changed, err := fn(c)
		if err != nil || !changed {
			return c, err
		}
		c.UpdatedAt = s.now().UTC()
		b, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("registry: encode %s: %w", name, err)
		}
		newRev, err := s.records.Update(ctx, events.ClusterKey(name), b, rev)
		if err == nil {
			s.cache.put(name, cloneCluster(c), newRev)
			return c, nil
		}
		if !events.IsCASConflict(err) {
			return nil, fmt.Errorf("registry: write %s: %w", name, err)
		}
		s.m.casRetries.Inc()
		// Someone else wrote first: back off a little so many writers converge.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(rand.N(attempt+1)) * time.Millisecond):
		}
	}
	return nil, rh.Conflict("cluster %q is changing too fast; try again", name)
}
