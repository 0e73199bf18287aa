package sshgateway

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/agent"
	"github.com/rhq/rh/internal/sshx"
)

// Command operations: the op label of rh_ssh_command_duration_seconds.
const (
	opRun      = "run"      // a command run on a node
	opUpload   = "upload"   // a file transfer to a node
	opDownload = "download" // a file transfer from a node
)

// Dial failure classes: the label values of rh_ssh_dial_failures_total.
var dialClasses = []struct {
	class string
	err   error
}{
	{"conn_refused", sshx.ErrConnRefused},
	{"auth_refused", sshx.ErrAuthFailed},
	{"host_key_changed", sshx.ErrHostKeyChanged},
	{"timeout", sshx.ErrTimeout},
	{"dns", sshx.ErrDNS},
	{"proxy_failed", sshx.ErrProxyFailed},
	{"unreachable", sshx.ErrUnreachable},
	{"conn_lost", sshx.ErrConnLost},
}

// dialClass maps a dial error to a bounded label value.
func dialClass(err error) string {
	for _, c := range dialClasses {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return "other"
}

// CommandBuckets fit a command or transfer: milliseconds for `true`, up to
// an hour for a training step or a large file.
var CommandBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// DialBuckets fit an SSH dial: a LAN handshake in milliseconds, a proxy
// command (SSM) in seconds, a dead host at the connect timeout.
var DialBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}

// metrics have bounded labels: never a cluster, node or command. Every
// label value is created at zero at start.
type metrics struct {
	sessions     *prometheus.GaugeVec
	commands     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	dialDuration prometheus.Histogram
	agentTrips   *prometheus.HistogramVec
	dialFailures *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	handles      prometheus.Gauge

	agents     prometheus.Gauge
	placements *prometheus.CounterVec
	restarts   *prometheus.CounterVec
	fallbacks  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, pool *sshx.Pool) *metrics {
	f := promauto.With(reg)
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "rh_ssh_dials_total", Help: "SSH connections the gateway dialed, successful or not.",
	}, func() float64 { return float64(pool.Dials()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rh_ssh_pooled_connections", Help: "SSH connections held in the pool.",
	}, func() float64 { return float64(pool.Len()) })
	m := &metrics{
		sessions: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rh_ssh_sessions", Help: "Open SSH connections in use by clusters (conn) and commands running (command).",
		}, []string{"type"}),
		commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_commands_total", Help: "Commands run on nodes, by outcome (ok, nonzero, error, cancelled).",
		}, []string{"outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rh_ssh_command_duration_seconds", Help: "Time from start to end of commands that ran to an exit (op run) and of file transfers (op upload, download), by cluster kind.",
			Buckets: CommandBuckets,
		}, []string{"kind", "op"}),
		dialDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "rh_ssh_dial_duration_seconds", Help: "Time to dial an SSH connection (connect, proxy, handshake, authentication), successful or not.",
			Buckets: DialBuckets,
		}),
		agentTrips: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rh_ssh_agent_request_duration_seconds", Help: "Round trips of requests to node agents (facts, status, file operations), by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5 ms to ~2 min
		}, []string{"op"}),
		dialFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_dial_failures_total", Help: "SSH dials that failed, by class (conn_refused, auth_refused, host_key_changed, timeout, dns, proxy_failed, unreachable, conn_lost, other).",
		}, []string{"class"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_bytes_total", Help: "Bytes moved through the gateway, by direction (stdout, stderr, upload, download).",
		}, []string{"direction"}),
		handles: f.NewGauge(prometheus.GaugeOpts{Name: "rh_ssh_open_files", Help: "Remote files open for transfers."}),
		agents:  f.NewGauge(prometheus.GaugeOpts{Name: "rh_ssh_agents", Help: "Node agents running (one per node)."}),
		placements: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_agent_placements_total", Help: "Agent placements before a start, by result (uploaded, reused, cannot_run, error).",
		}, []string{"result"}),
		restarts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_agent_restarts_total", Help: "Node agents restarted, by reason (died, requested).",
		}, []string{"reason"}),
		fallbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_agent_fallbacks_total", Help: "Nodes found unable to run the agent, falling back to plain SSH sessions, by reason (cannot_run, start_failed).",
		}, []string{"reason"}),
	}
	zero := func(v interface {
		WithLabelValues(...string) prometheus.Counter
	}, values ...string) {
		for _, l := range values {
			v.WithLabelValues(l)
		}
	}
	for _, t := range []string{"conn", "command"} {
		m.sessions.WithLabelValues(t)
	}
	zero(m.commands, "ok", "nonzero", "error", "cancelled")
	zero(m.bytes, "stdout", "stderr", "upload", "download")
	zero(m.placements, "uploaded", "reused", "cannot_run", "error")
	zero(m.restarts, "died", "requested")
	zero(m.fallbacks, "cannot_run", "start_failed")
	for _, c := range dialClasses {
		m.dialFailures.WithLabelValues(c.class)
	}
	m.dialFailures.WithLabelValues("other")
	for _, k := range rh.Kinds {
		for _, op := range []string{opRun, opUpload, opDownload} {
			m.duration.WithLabelValues(string(k), op)
		}
	}
	for _, op := range agent.RoundTripOps {
		m.agentTrips.WithLabelValues(op)
	}
	return m
}

// dialed records one dial of the pool (sshx.Pool.OnDial).
func (m *metrics) dialed(took time.Duration, err error) {
	m.dialDuration.Observe(took.Seconds())
	if err != nil {
		m.dialFailures.WithLabelValues(dialClass(err)).Inc()
	}
}

// commandTook records a command (op run) or a file transfer (op upload,
// download) on a node of a cluster of kind that ended at an exit or
// complete, begun at start.
func (m *metrics) commandTook(kind rh.Kind, op string, start time.Time) {
	if kind == "" {
		kind = "unknown"
	}
	m.duration.WithLabelValues(string(kind), op).Observe(time.Since(start).Seconds())
}
