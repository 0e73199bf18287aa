package sshgateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rhq/rh/internal/sshx"
)

// metrics have bounded labels: never a cluster, node or command.
type metrics struct {
	sessions *prometheus.GaugeVec
	commands *prometheus.CounterVec
	latency  prometheus.Histogram
	bytes    *prometheus.CounterVec
	handles  prometheus.Gauge

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
	return &metrics{
		sessions: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rh_ssh_sessions", Help: "Open SSH connections in use by clusters (conn) and commands running (command).",
		}, []string{"type"}),
		commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rh_ssh_commands_total", Help: "Commands run on nodes, by outcome (ok, nonzero, error, cancelled).",
		}, []string{"outcome"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "rh_ssh_command_duration_seconds", Help: "Time from start to exit of commands run on nodes.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 12),
		}),
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
}
