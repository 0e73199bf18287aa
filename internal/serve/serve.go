// Package serve runs rh's services in one process: `rhcli serve`. With no
// NATS URL it embeds a NATS server with JetStream on disk (the embedded
// default); with one it joins that NATS and runs only the services asked for.
package serve

import (
	"context"
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rhq/rh/internal/natsutil"
)

// Options configure a serve process.
type Options struct {
	// DataDir holds the embedded server's JetStream files and the lock.
	DataDir string
	// Listen is where the embedded server takes clients.
	Listen string
	// NATSURL joins an existing NATS instead of embedding one.
	NATSURL string
	Creds   string
	// HTTPAddr serves /metrics, /healthz and /readyz; empty disables it.
	HTTPAddr string
	// Services to run; empty means all.
	Services []string
	// Sim wires the cloud workers to the in-repo simulators.
	Sim bool
	// ReconcileEvery is the registry's refresh period (0: its default).
	ReconcileEvery time.Duration
	Logger         *slog.Logger
	// Ready, when set, is called once everything is serving, with the NATS URL.
	Ready func(natsURL string)
}

// Service is one running service.
type Service interface{ Stop() }

// Deps is what a service gets to start.
type Deps struct {
	NC       *nats.Conn
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Opts     Options
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
	var ns *natsutil.Embedded
	url := o.NATSURL
	if url == "" {
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return fmt.Errorf("serve: data dir: %w", err)
		}
		unlock, err := lockDataDir(o.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
		ns, err = natsutil.StartEmbedded(natsutil.EmbeddedOptions{StoreDir: o.DataDir, Listen: o.Listen})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer ns.Shutdown()
		url = ns.ClientURL()
		log.Info("embedded NATS with JetStream", "url", url, "data_dir", o.DataDir)
	}
	nc, err := natsutil.Connect(ctx, url, "rh-serve", o.Creds)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer nc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector())
	var ready atomic.Bool
	var httpSrv *http.Server
	if o.HTTPAddr != "" {
		httpSrv, err = startHTTP(o.HTTPAddr, reg, nc, &ready, log)
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
		s, err := starters[name](ctx, Deps{NC: nc, Logger: log.With("service", name), Registry: svcReg, Opts: o})
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
		o.Ready(url)
	}
	<-ctx.Done()
	ready.Store(false)
	log.Info("stopping")
	return nil
}

// starters maps service names to their starters, in start order.
var starters = map[string]Starter{}

// serviceOrder is the start order; Register appends to it.
var serviceOrder []string

// Register adds a service that `rhcli serve` can run.
func Register(name string, s Starter) {
	starters[name] = s
	serviceOrder = append(serviceOrder, name)
}

// ServiceNames lists the services this build can run.
func ServiceNames() []string { return slices.Clone(serviceOrder) }

func selectServices(asked []string) ([]string, error) {
	if len(asked) == 0 {
		return ServiceNames(), nil
	}
	var out []string
	for _, n := range serviceOrder {
		if slices.Contains(asked, n) {
			out = append(out, n)
		}
	}
	for _, a := range asked {
		if _, ok := starters[a]; !ok {
			return nil, fmt.Errorf("serve: --services: %q is not a service (%s)", a, strings.Join(serviceOrder, ", "))
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

func startHTTP(addr string, reg *prometheus.Registry, nc *nats.Conn, ready *atomic.Bool, log *slog.Logger) (*http.Server, error) {
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
