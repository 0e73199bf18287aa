// Package serve runs rh's services in one process: `rhcli serve`. With no
// NATS URL it embeds a NATS server with JetStream on disk (the embedded
// default); with one it joins that NATS and runs only the services asked for.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natsembed"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/svc"
)

// Options configure a serve process.
type Options struct {
	// DataDir holds the embedded server's JetStream files and the lock.
	DataDir string
	// Listen is where the embedded server takes clients.
	Listen string
	// NATSURL joins an existing NATS instead of embedding one.
	NATSURL string
	// Creds is the credentials file serve connects to NATS with (--nats):
	// one of the service users `rhcli nats-config` writes.
	Creds string
	// InsecureNATS accepts a NATS without rh's accounts: every caller is
	// then treated as the operator. Never the default.
	InsecureNATS bool
	// TLSCert and TLSKey serve the embedded server's clients over TLS
	// (required beyond loopback); TLSClientCA also requires client certificates.
	TLSCert, TLSKey, TLSClientCA string
	// StoreKey encrypts JetStream at rest instead of the key file made on
	// first start (RH_JETSTREAM_KEY).
	StoreKey string
	// Replicas of every stream, bucket and durable consumer; 0 picks 3 on a
	// NATS cluster of three or more servers, else 1, and never lowers what a
	// stream already has.
	Replicas int
	// Version is rh's version, shown by rh_build_info.
	Version string
	// Getenv reads the process environment for services that take settings
	// from it (AWS's, SageMaker's role, SkyPilot's endpoint and token); nil
	// reads nothing.
	Getenv func(string) string
	// UsersFile lists users (JSON, as `rhcli nats-config` writes users.json)
	// the registry records at start: the first admin of a NATS of your own.
	UsersFile string
	// AllowProxyCommands lets every user's clusters run proxy commands on
	// the gateway host (otherwise admins' only).
	AllowProxyCommands bool
	// LendGatewayIdentity lets clusters with no key or password of their
	// own use the gateway user's ~/.ssh keys and ssh-agent (off: the
	// operator's keys are not lent to other users' clusters).
	LendGatewayIdentity bool
	// HTTPAddr serves /metrics, /healthz and /readyz; empty disables it.
	HTTPAddr string
	// Services to run; empty means all.
	Services []string
	// Sim wires the cloud workers to the in-repo simulators.
	Sim bool
	// ReconcileEvery is the registry's refresh period (0: its default).
	ReconcileEvery time.Duration
	Logger         *slog.Logger
	// Ready, when set, is called once everything is serving, with the NATS
	// URL and, for the embedded server, the local operator's credentials file.
	Ready func(natsURL, operatorCreds string)
}

// Service is one running service.
type Service interface{ Stop() }

// Deps is what a service gets to start.
type Deps struct {
	NC       *nats.Conn
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Opts     Options
	// Auth says who sent each request (an insecure authenticator with
	// --insecure-nats).
	Auth *auth.Authenticator
}

// Starter starts one service.
type Starter func(ctx context.Context, d Deps) (Service, error)

// ErrDataDirInUse is returned when another serve process holds the data dir.
var ErrDataDirInUse = errors.New("data dir is in use")

// Run serves until ctx ends, then stops services and the server in order.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger
	names, err := selectServices(o.Services)
	if err != nil {
		return err
	}
	var ns *natsembed.Server
	var material *auth.Material
	url, creds := o.NATSURL, o.Creds
	if url == "" {
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return fmt.Errorf("serve: data dir: %w", err)
		}
		unlock, err := lockDataDir(o.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
		// First start makes the accounts' keys, the operator's credentials
		// and the store's encryption key; later starts reuse them.
		material, err = auth.EnsureMaterial(filepath.Join(o.DataDir, "auth"), o.StoreKey)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		ns, err = natsembed.Start(natsembed.Options{
			StoreDir: o.DataDir, Listen: o.Listen, StoreKey: material.StoreKey,
			Auth:       &auth.ServerConfig{ServiceKeys: material.ServiceKeys(), Users: []rh.User{material.Operator}},
			ConfigPath: filepath.Join(material.Dir, "nats.conf"),
			TLSCert:    o.TLSCert, TLSKey: o.TLSKey, TLSClientCA: o.TLSClientCA,
		})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer ns.Shutdown()
		url, creds = ns.ClientURL(), material.ServiceCreds(auth.SvcServe)
		log.Info("embedded NATS with JetStream", "url", url, "data_dir", o.DataDir, "tls", o.TLSCert != "")
	}
	connOpts := []nats.Option{nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
		log.Warn("NATS disconnected", "err", err)
	}), nats.ReconnectHandler(func(c *nats.Conn) {
		log.Info("NATS reconnected", "url", c.ConnectedUrl())
	})}
	if ns != nil {
		// The services talk to their own embedded server in-process: no
		// socket, and no TLS to trust.
		connOpts = append(connOpts, nats.InProcessServer(ns.Server))
		if o.TLSCert != "" {
			// The server still speaks TLS over the in-memory pipe, under a
			// name made for remote clients; there is no network between
			// the two ends to guard, so the certificate is not verified.
			connOpts = append(connOpts, nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})) //nolint:gosec // in-process pipe
		}
	}
	nc, err := natsutil.Connect(ctx, url, "rh-serve", creds, connOpts...)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer nc.Close()
	if err := setupStreams(ctx, nc, o, log); err != nil {
		return err
	}
	authn, err := authenticate(ctx, nc, ns, material, names, o, log)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector())
	reg.MustRegister(buildInfo(o.Version))
	var ready atomic.Bool
	var httpSrv *http.Server
	if o.HTTPAddr != "" {
		// Loud only when the bus itself lets anyone in: a worker-only
		// process answers no requests and has no authenticator to speak of.
		openBus := ns == nil && !nc.AuthRequired()
		httpSrv, err = startHTTP(o.HTTPAddr, reg, nc, &ready, openBus, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = httpSrv.Shutdown(sctx)
		}()
	}

	var running []Service
	defer func() {
		// Stop in reverse: workers before the registry whose reports they feed.
		for _, s := range slices.Backward(running) {
			s.Stop()
		}
	}()
	for _, name := range names {
		svcReg := prometheus.WrapRegistererWith(prometheus.Labels{"service": name}, reg)
		s, err := starter(name)(ctx, Deps{NC: nc, Logger: log, Registry: svcReg, Opts: o, Auth: authn})
		if err != nil {
			return fmt.Errorf("serve: start %s: %w", name, err)
		}
		running = append(running, s)
	}
	ready.Store(true)
	// Start-up garbage (stream and bucket set-up, the KV cache's first fill)
	// would otherwise sit in RSS until the next GC cycle: an idle serve should
	// be small.
	debug.FreeOSMemory()
	log.Info("rh is serving", "services", strings.Join(names, ","), "nats", url)
	if o.Ready != nil {
		opCreds := ""
		if material != nil {
			opCreds = material.OperatorCreds
		}
		o.Ready(url, opCreds)
	}
	<-ctx.Done()
	ready.Store(false)
	log.Info("stopping")
	return nil
}

// setupStreams creates or updates rh's streams and buckets: serve is their
// one owner (services only bind), so limits and replicas come from here.
func setupStreams(ctx context.Context, nc *nats.Conn, o Options, log *slog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	l := events.DefaultLimits()
	l.Replicas = o.Replicas
	if o.Replicas == 0 {
		l.Replicas, l.KeepHigherReplicas = 1, true
		if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
			l.Replicas = 3
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// A NATS cluster started together with rh (compose, a restart of
	// everything) may not have all its peers yet: placement fails until
	// they join, which is a matter of seconds, not a fault.
	for pause := 250 * time.Millisecond; ; pause = min(2*pause, 5*time.Second) {
		err := events.Setup(sctx, js, l)
		if err == nil {
			break
		}
		if !clusterForming(err) || sctx.Err() != nil {
			return fmt.Errorf("serve: set up streams and buckets: %w", err)
		}
		log.Warn("JetStream not ready for the streams yet; trying again", "err", err, "in", pause)
		select {
		case <-sctx.Done():
			return fmt.Errorf("serve: set up streams and buckets: %w", err)
		case <-time.After(pause):
		}
	}
	log.Info("streams and buckets set up", "replicas", l.Replicas, "keep_higher", l.KeepHigherReplicas)
	return nil
}

// jsNoSuitablePeers is the server's JSClusterNoPeersErr: "no suitable peers
// for placement" (nats.go names no constant for it).
const jsNoSuitablePeers jetstream.ErrorCode = 10005

// clusterForming reports whether err is JetStream not ready to place a
// stream yet (a peer still joining, no leader) rather than a refusal.
func clusterForming(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) && (api.Code == 503 || api.ErrorCode == jsNoSuitablePeers) {
		return true
	}
	return svc.StoreUnavailable(err)
}

// ServiceNames lists the services this build can run, in start order.
func ServiceNames() []string {
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.name
	}
	return names
}

func starter(name string) Starter {
	for _, s := range services {
		if s.name == name {
			return s.start
		}
	}
	return nil
}

func selectServices(asked []string) ([]string, error) {
	all := ServiceNames()
	if len(asked) == 0 {
		return all, nil
	}
	for _, a := range asked {
		if !slices.Contains(all, a) {
			return nil, fmt.Errorf("serve: --services: %q is not a service (%s)", a, strings.Join(all, ", "))
		}
	}
	var out []string
	for _, n := range all {
		if slices.Contains(asked, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// lockDataDir takes an exclusive lock so a second serve on the same data dir
// fails clearly instead of corrupting JetStream's files.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "rh.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serve: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "another process"
		} else {
			holder = "pid " + holder
		}
		return nil, fmt.Errorf("%w: %s is used by another `rhcli serve` (%s); stop it or pass a different --data-dir", ErrDataDirInUse, dir, holder)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// buildInfo is rh_build_info{version} 1: version is rh's (the CLI's, which
// the build stamps); empty means the module's version or VCS revision.
func buildInfo(version string) prometheus.Collector {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
				v = s.Value
			}
		}
	}
	if v == "" {
		v = "unknown"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rh_build_info", Help: "Always 1; its version label is rh's version.", ConstLabels: prometheus.Labels{"version": v},
	})
	g.Set(1)
	return g
}

func startHTTP(addr string, reg *prometheus.Registry, nc *nats.Conn, ready *atomic.Bool, insecure bool, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !ready.Load():
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		case !nc.IsConnected():
			http.Error(w, "NATS disconnected", http.StatusServiceUnavailable)
		case insecure:
			_, _ = w.Write([]byte("ready, INSECURE: NATS without rh's accounts (--insecure-nats): every caller is treated as the operator\n"))
		default:
			_, _ = w.Write([]byte("ready\n"))
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: --http-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	log.Info("http", "addr", ln.Addr().String())
	return srv, nil
}
