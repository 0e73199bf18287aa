// Package sshgateway is rh's SSH side. It is the worker of BYO clusters
// (connect to the user's machines, record their host keys on first contact,
// gather facts, report Up, Degraded or Failed, re-check on refresh), and it
// runs commands and moves files on the nodes of every kind of cluster: its
// request API (rh.api.ssh.*) resolves a cluster's nodes from the record and
// its secrets from the secret store, and talks to them over one pool of
// persistent SSH connections.
//
// Secrets (keys, passwords) are read from KV rh_secrets only when a
// connection is made; they never enter logs, events, metrics or answers,
// except the connect endpoint, whose purpose is to hand the key to the
// user's own ssh.
package sshgateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/pkg/sftp"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/secrets"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/svc"
	"github.com/rhq/rh/internal/worker"
)

// Version is the gateway's micro service version.
const Version = "0.1.0"

// Durable is the consumer name of the BYO worker, shared by every replica.
const Durable = "sshgateway"

// Config configures the gateway.
type Config struct {
	// ID names this instance (owner in reports, handle subjects); default random.
	ID string
	// ConnectTimeout bounds one dial; default 15 s.
	ConnectTimeout time.Duration
	// ProbeTimeout bounds checking one node (dial and facts); default 20 s.
	ProbeTimeout time.Duration
	// KeepaliveInterval and IdleTimeout tune the connection pool.
	KeepaliveInterval time.Duration
	IdleTimeout       time.Duration
	// HomeDir is where the gateway user's default keys (~/.ssh/id_*) are
	// looked for; default the user's home.
	HomeDir string
	// HandleIdle closes file handles unused for this long; default 2 min.
	HandleIdle time.Duration
	// ClientStall cancels a run whose client acknowledged nothing for this
	// long while the window was full; default 60 s.
	ClientStall time.Duration
	// Heartbeat is the period of run stream heartbeats; default 5 s.
	Heartbeat time.Duration
	// DisableAgent runs everything over plain SSH sessions and SFTP, as
	// before node agents existed: for comparison benchmarks, and nodes
	// where placing a binary is not wanted (`rhcli serve` sets it from
	// RH_SSH_AGENT=off).
	DisableAgent bool
	// AgentVersion names the agent binary placed on nodes
	// (~/.rh/bin/rhcli-<version>); default agent.Version, which rhcli sets to
	// its own version. A node holding another version gets this one.
	AgentVersion string
	// AgentBinaries maps a Go architecture (amd64, arm64) to the Linux
	// binary placed on nodes of that architecture. Default: this executable
	// for its own (linux) architecture, rhcli-linux-<arch> next to it for others.
	AgentBinaries map[string]string
	// AgentStartTimeout bounds placing and starting one agent; default 60 s.
	AgentStartTimeout time.Duration
	// AgentRetry is how long a node where the agent cannot run stays on
	// plain sessions before the gateway looks again; default 10 min.
	AgentRetry time.Duration
	// AgentRestartBackoff is the first delay between restarts of an agent
	// that keeps failing; it doubles; default 200 ms.
	AgentRestartBackoff time.Duration
	// Worker tunes the BYO event loop (Kind, Durable, Logger and Registry are set here).
	Worker   worker.Config
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Auth says who each request comes from; nil treats every caller as the
	// operator (a NATS without rh's accounts).
	Auth *auth.Authenticator
	// AllowProxyCommands lets every cluster's BYO proxy command run on the
	// gateway host (`rhcli serve --allow-proxy-commands`). Without it a proxy
	// command runs only for clusters whose owner is an admin, or when Auth is
	// insecure (every caller is the operator anyway). Proxy commands of nodes
	// reported by the cloud workers are always allowed (the registry
	// validates them); jump hosts are always allowed (they are Go, not a shell).
	AllowProxyCommands bool
	// LendOwnIdentity lets a cluster with no key or password of its own log
	// in with the gateway user's identity: its default keys (HomeDir/.ssh/id_*)
	// and, for clusters that ask for the agent, its SSH_AUTH_SOCK. Off by
	// default: the operator's keys are the operator's. A single-user embedded
	// deployment may turn it on for its local operator.
	LendOwnIdentity bool
	// AgentSocket is the gateway user's ssh-agent (SSH_AUTH_SOCK), lent only
	// with LendOwnIdentity to clusters that ask for an agent.
	AgentSocket string
	// MaxOpenFiles caps the remote files one caller may hold open at once;
	// default 512.
	MaxOpenFiles int
	// NodeCacheTTL is how long a cluster's resolved nodes and keys serve
	// further requests (a transfer of many small files makes several per
	// file); a change to the cluster's record drops them at once; default 2 s.
	NodeCacheTTL time.Duration
	// KeepAliveDir is where a SageMaker node's keep-alive loop reads its
	// autostop_mins file; default DefaultKeepAliveDir. `--sim` nodes are
	// sshd processes of the serving user, which cannot write /opt.
	KeepAliveDir string
}

func (c *Config) defaults() {
	if c.ID == "" {
		c.ID = "sshgateway-" + uuid.NewString()[:8]
	}
	if c.KeepAliveDir == "" {
		c.KeepAliveDir = DefaultKeepAliveDir
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = sshx.DefaultConnectTimeout
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = 20 * time.Second
	}
	if c.HandleIdle == 0 {
		c.HandleIdle = 2 * time.Minute
	}
	if c.ClientStall == 0 {
		c.ClientStall = 60 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	// A streamed answer's route expires 2 min after its last message: a run
	// must beat well within that.
	c.Heartbeat = min(c.Heartbeat, 30*time.Second)
	if c.NodeCacheTTL <= 0 {
		c.NodeCacheTTL = 2 * time.Second
	}
	if c.MaxOpenFiles <= 0 {
		c.MaxOpenFiles = 512
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Auth == nil {
		c.Auth = auth.Insecure()
	}
	if c.AgentVersion == "" {
		c.AgentVersion = agent.Version
	}
	if c.AgentStartTimeout == 0 {
		c.AgentStartTimeout = 60 * time.Second
	}
	if c.AgentRetry == 0 {
		c.AgentRetry = 10 * time.Minute
	}
	if c.AgentRestartBackoff == 0 {
		c.AgentRestartBackoff = 200 * time.Millisecond
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

// Service is a running gateway.
type Service struct {
	cfg      Config
	nc       *nats.Conn
	js       jetstream.JetStream
	records  jetstream.KeyValue
	secrets  *secrets.Store
	hostKeys *kvHostKeys
	pool     *sshx.Pool
	log      *slog.Logger
	m        *metrics
	handles  *handleTable

	svc     micro.Service
	subs    []*nats.Subscription
	watch   jetstream.KeyWatcher // of cluster records, for the target cache
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	runs    sync.WaitGroup
	targets targetCache

	mu    sync.Mutex
	conns map[string]map[*sshx.Client]bool // cluster → connections it used
	sftps map[*sshx.Client]*sftpEntry
	// agents holds one entry per node (agentKey), see agents.go.
	agents map[string]*nodeAgent
	// handleSubs serve open files, one per user (handleSubject).
	handleSubs map[string]*nats.Subscription
	// active are the runs in progress, for live status.
	active sync.Map // run id → *run
}

type sftpEntry struct {
	ready chan struct{}
	c     *sftp.Client
	err   error
}

// Start starts the BYO worker, the request API and the file handle server.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("sshgateway: %w", err)
	}
	if err := events.Check(ctx, js); err != nil {
		return nil, fmt.Errorf("sshgateway: %w", err)
	}
	kv := func(name string) (jetstream.KeyValue, error) {
		b, err := js.KeyValue(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("sshgateway: bucket %s: %w", name, err)
		}
		return b, nil
	}
	s := &Service{cfg: cfg, nc: nc, js: js, log: cfg.Logger.With("service", "sshgateway"),
		conns: map[string]map[*sshx.Client]bool{}, sftps: map[*sshx.Client]*sftpEntry{}, agents: map[string]*nodeAgent{},
		handleSubs: map[string]*nats.Subscription{}}
	if s.records, err = kv(events.BucketClusters); err != nil {
		return nil, err
	}
	secretsKV, err := kv(events.BucketSecrets)
	if err != nil {
		return nil, err
	}
	s.secrets = secrets.New(secretsKV)
	hk, err := kv(events.BucketHostKeys)
	if err != nil {
		return nil, err
	}
	s.hostKeys = &kvHostKeys{kv: hk}
	s.pool = &sshx.Pool{
		Dialer:      &sshx.Dialer{HostKeys: s.hostKeys, KeepaliveInterval: cfg.KeepaliveInterval, Logger: s.log, AgentSocket: cfg.AgentSocket},
		IdleTimeout: cfg.IdleTimeout,
	}
	s.m = newMetrics(cfg.Registry, s.pool)
	s.pool.OnDial = s.m.dialed
	s.handles = newHandleTable(cfg.MaxOpenFiles)
	s.targets.ttl = cfg.NodeCacheTTL
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))

	wcfg := cfg.Worker
	wcfg.Kind, wcfg.Durable, wcfg.ID, wcfg.Logger, wcfg.Registry = rh.KindBYO, Durable, cfg.ID, s.log, cfg.Registry
	w, err := worker.New(ctx, js, wcfg, s.handleIntent)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("sshgateway: %w", err)
	}
	if err := s.startAPI(); err != nil {
		s.Stop()
		return nil, err
	}
	s.wg.Go(func() {
		if err := w.Run(s.ctx); err != nil {
			s.log.Error("byo worker stopped", "err", err)
		}
	})
	s.wg.Go(func() { s.sweepHandles(s.ctx) })
	if err := s.watchRecords(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// watchRecords drops a cluster's cached nodes as soon as its record
// changes (torn down, new nodes, shared or unshared), so no request acts on
// nodes or rights the record no longer has; NodeCacheTTL bounds a lagging watch.
func (s *Service) watchRecords() error {
	w, err := s.records.Watch(s.ctx, events.ClusterKey("*"), jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("sshgateway: watch cluster records: %w", err)
	}
	s.watch = w
	s.wg.Go(func() {
		// The channel closes once Stop stops the watch (or NATS closes).
		for e := range w.Updates() {
			if e != nil {
				s.targets.forget(strings.TrimPrefix(e.Key(), events.ClusterKey("")))
			}
		}
	})
	return nil
}

// Stop stops the API, cancels runs (killing their remote processes), closes
// open files and every pooled connection.
func (s *Service) Stop() {
	if s.svc != nil {
		_ = s.svc.Stop()
	}
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	if s.watch != nil {
		_ = s.watch.Stop()
	}
	s.cancel()
	// After cancel: an open still in flight makes no subscription now.
	s.mu.Lock()
	for _, sub := range s.handleSubs {
		_ = sub.Unsubscribe()
	}
	s.mu.Unlock()
	// Open writers' goroutines end when their handle closes.
	s.handles.closeAll()
	// Agents kill their commands when their session ends.
	s.closeAgents()
	s.runs.Wait()
	s.wg.Wait()
	s.mu.Lock()
	for c, e := range s.sftps {
		select {
		case <-e.ready:
			if e.c != nil {
				e.c.Close()
			}
		default:
		}
		delete(s.sftps, c)
	}
	s.mu.Unlock()
	_ = s.pool.Close()
}

// handleSubject is where this instance serves the open files of the
// caller of ctx, under the caller's own control prefix. Each user has a
// subscription of its own, made on its first open: NATS lets no one else
// publish to it, and a user who floods it fills only its own queue.
func (s *Service) handleSubject(ctx context.Context) (string, error) {
	owner := ownerFrom(ctx)
	subject := api.ControlPrefix(owner) + ".fsh." + s.cfg.ID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return "", &rh.Error{Code: rh.EUNAVAILABLE, Message: "the gateway is stopping"}
	}
	if s.handleSubs[owner] == nil {
		sub, err := s.nc.Subscribe(subject+".*", s.onHandleMsg)
		if err != nil {
			return "", fmt.Errorf("sshgateway: handle subject: %w", err)
		}
		s.handleSubs[owner] = sub
	}
	return subject, nil
}

func (s *Service) startAPI() error {
	sv, err := micro.AddService(s.nc, micro.Config{
		Name: api.SSHService, Version: Version, Description: "rh SSH gateway: commands and files on cluster nodes",
	})
	if err != nil {
		return fmt.Errorf("sshgateway: micro: %w", err)
	}
	s.svc = sv
	g := sv.AddGroup(api.SSHPrefix)
	fsg := g.AddGroup("fs")
	// Answers of several messages go through the streamed-response export.
	sg := sv.AddGroup(api.SSHStreamPrefix)
	sfsg := sg.AddGroup("fs")
	ctx := s.ctx
	type ep struct {
		g    micro.Group
		name string
		h    micro.Handler
	}
	eps := []ep{
		{sg, api.SSHOpRun, micro.HandlerFunc(s.runEndpoint)},
		{g, api.SSHOpTrust, svc.Handle(ctx, s.log, s.cfg.Auth, s.Trust)},
		{g, api.SSHOpConnect, svc.Handle(ctx, s.log, s.cfg.Auth, s.Connect)},
		{g, api.SSHOpNodes, svc.Handle(ctx, s.log, s.cfg.Auth, s.Nodes)},
		{g, api.SSHOpStatus, svc.Handle(ctx, s.log, s.cfg.Auth, s.Status)},
		{g, api.SSHOpRestartAgent, svc.Handle(ctx, s.log, s.cfg.Auth, s.RestartAgent)},
		{sfsg, api.FSHashBlocks, micro.HandlerFunc(s.fsHashBlocks)},
		{fsg, api.FSPatch, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsPatch)},
		{fsg, api.FSStat, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsStat)},
		{sfsg, api.FSWalk, micro.HandlerFunc(s.fsWalk)},
		{fsg, api.FSOpen, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsOpen)},
		{fsg, api.FSCreate, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsCreate)},
		{fsg, api.FSMkdir, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsMkdir)},
		{fsg, api.FSRemove, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsRemove)},
		{fsg, api.FSSymlink, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsSymlink)},
		{fsg, api.FSChmod, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsChmod)},
		{fsg, api.FSChtimes, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsChtimes)},
		{fsg, api.FSWriteFiles, svc.Handle(ctx, s.log, s.cfg.Auth, s.fsWriteFiles)},
	}
	var errs []error
	// Services only (a subject people cannot publish to), so not in a group.
	if err := sv.AddEndpoint("keepalive-autostop", s.async(svc.Handle(ctx, s.log, s.cfg.Auth, s.KeepAliveAutostop)),
		micro.WithEndpointSubject(api.KeepAliveAutostopSubject)); err != nil {
		errs = append(errs, fmt.Errorf("sshgateway: endpoint keepalive-autostop: %w", err))
	}
	for _, e := range eps {
		// micro calls a handler once at a time per endpoint; every request here
		// may wait on a node, so each runs on its own goroutine.
		if err := e.g.AddEndpoint(e.name, s.async(e.h)); err != nil {
			errs = append(errs, fmt.Errorf("sshgateway: endpoint %s: %w", e.name, err))
		}
	}
	return errors.Join(errs...)
}

// async runs h on its own goroutine, so one slow node does not hold up
// requests about other nodes.
func (s *Service) async(h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		d := svc.Detach(s.nc, r)
		s.wg.Go(func() { h.Handle(d) })
	})
}

// request starts a raw handler's work as svc.Handle does: the caller from
// the server-set headers (Config.Auth) into the context, the body decoded
// strictly by svc.Decode (a field the API does not have, such as run's old
// "stream", is refused).
func request[Req any](s *Service, r micro.Request, timeout time.Duration) (context.Context, context.CancelFunc, Req, error) {
	var req Req
	caller, err := s.cfg.Auth.Caller(nats.Header(r.Headers()))
	if err != nil {
		return nil, nil, req, err
	}
	if req, err = svc.Decode[Req](r.Data()); err != nil {
		return nil, nil, req, err
	}
	ctx, cancel := context.WithTimeout(auth.WithCaller(s.ctx, caller), timeout)
	return ctx, cancel, req, nil
}

// ownerFrom is the token of the control subjects (api.ControlPrefix) of
// ctx's caller: its nkey as the server stamped it, the only prefix its
// permissions let it publish under ("operator" with authentication off,
// "service" for rh's own services).
func ownerFrom(ctx context.Context) string {
	key := auth.CallerFrom(ctx).Key
	if key == "" || strings.ContainsAny(key, ".*> \t") {
		return "service"
	}
	return key
}

// respondStreamError answers a streamed request with err and closes the
// stream. Internal details stay in the log.
func (s *Service) respondStreamError(r micro.Request, err error) {
	if rh.ErrorCode(err) == rh.EINTERNAL {
		s.log.Error("request failed", "subject", r.Subject(), "err", err)
		err = rh.ErrInternal
	}
	svc.RespondError(r, err)
	s.endStream(r.Reply())
}

// endStream sends the empty message that ends a streamed answer, so the
// server drops the reply route at once instead of after its threshold.
func (s *Service) endStream(reply string) {
	if reply != "" {
		_ = s.nc.Publish(reply, nil)
	}
}

// client returns the pooled connection to t and remembers that cluster
// uses it, so teardown and trust can close it.
func (s *Service) client(ctx context.Context, cluster string, t sshx.Target) (*sshx.Client, error) {
	c, err := s.pool.Get(withRecorder(ctx, cluster), t)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	set := s.conns[cluster]
	if set == nil {
		set = map[*sshx.Client]bool{}
		s.conns[cluster] = set
	}
	if !set[c] {
		set[c] = true
		s.m.sessions.WithLabelValues("conn").Inc()
		go func() {
			<-c.Done()
			s.m.sessions.WithLabelValues("conn").Dec()
			s.mu.Lock()
			delete(s.conns[cluster], c)
			if len(s.conns[cluster]) == 0 {
				delete(s.conns, cluster)
			}
			s.mu.Unlock()
		}()
	}
	s.mu.Unlock()
	return c, nil
}

// closeCluster closes the connections a cluster used; the pool dials
// afresh on the next use.
func (s *Service) closeCluster(cluster string) {
	s.targets.forget(cluster)
	s.mu.Lock()
	var cs []*sshx.Client
	for c := range s.conns[cluster] {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// sftpClient returns the SFTP client over c, opening it on first use; it
// is closed when c ends.
func (s *Service) sftpClient(c *sshx.Client) (*sftp.Client, error) {
	s.mu.Lock()
	e := s.sftps[c]
	if e != nil {
		select {
		case <-e.ready:
			if e.err != nil {
				delete(s.sftps, c)
				e = nil
			}
		default:
		}
	}
	if e == nil {
		e = &sftpEntry{ready: make(chan struct{})}
		s.sftps[c] = e
		s.mu.Unlock()
		e.c, e.err = sftp.NewClient(c.SSH(), sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
		close(e.ready)
		if e.err == nil {
			go func() {
				// The SFTP channel ends with the connection or on its own.
				done := make(chan struct{})
				go func() { _ = e.c.Wait(); close(done) }()
				select {
				case <-c.Done():
				case <-done:
				}
				e.c.Close()
				s.mu.Lock()
				if s.sftps[c] == e {
					delete(s.sftps, c)
				}
				s.mu.Unlock()
			}()
		}
	} else {
		s.mu.Unlock()
		<-e.ready
	}
	if e.err != nil {
		return nil, fmt.Errorf("start sftp on %s: %w", c.Target(), e.err)
	}
	return e.c, nil
}
