package bench

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/workertest"
	"github.com/rhq/rh/services/skyworker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// Issue 10's scale curve: how rh's own cost grows with the number of
// clusters created at once and with the number of nodes a command runs on.

// scaleClusters are the sizes of BenchmarkScaleCreateToUp.
var scaleClusters = []int{1, 100, 1000}

// scaleNodes are the sizes of BenchmarkScaleRunAll; the largest is how many
// sshd nodes the benchmark starts.
var scaleNodes = []int{8, 32, 64, 128}

// pdshFanout is pdsh's -f: how many ssh connections it keeps going at once.
const pdshFanout = 64

// addressNodes are the simulator's machines when only rh's overhead is
// measured: addresses with nothing behind them, provisioned at once. The
// skyworker reports a cluster Up from SkyPilot's answer, without logging in.
type addressNodes struct {
	mu   sync.Mutex
	next int
}

func (a *addressNodes) Provision(_ context.Context, cluster string, n int) ([]skysim.Endpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	eps := make([]skysim.Endpoint, n)
	for i := range eps {
		a.next++
		ip := fmt.Sprintf("10.%d.%d.%d", a.next>>16&255, a.next>>8&255, a.next&255)
		eps[i] = skysim.Endpoint{InternalIP: ip, ExternalIP: ip, SSHPort: 22, SSHUser: "ubuntu",
			PrivateKeyPEM: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key: nothing logs in\n-----END OPENSSH PRIVATE KEY-----\n")}
	}
	return eps, nil
}

func (a *addressNodes) Release(context.Context, string) error { return nil }

// BenchmarkScaleCreateToUp: N on-demand clusters created at once through the
// registry, launched by a skyworker (default settings) on the SkyPilot
// simulator, which answers at once; timed from the first create to the last
// Up. ms/cluster is rh's overhead per cluster (registry, events, worker,
// records, the SkyPilot protocol), since the cloud takes no time.
func BenchmarkScaleCreateToUp(b *testing.B) {
	// The services log each create at info level; a thousand of them would
	// bury the results.
	defer slog.SetLogLoggerLevel(slog.SetLogLoggerLevel(slog.LevelWarn))
	spec := rh.Spec{Kind: rh.KindOnDemand, OnDemand: &rh.OnDemandSpec{InstanceType: "CPU:2+", NumInstances: 1, Provider: "aws", Region: "us-east-1"}}
	for _, n := range scaleClusters {
		b.Run(fmt.Sprintf("clusters-%d", n), func(b *testing.B) {
			bus := workertest.Start(b)
			sim := skysim.New(skysim.Options{Nodes: &addressNodes{}})
			sky, err := skypilot.New(skypilot.Config{Endpoint: workertest.Serve(b, sim)})
			if err != nil {
				b.Fatal(err)
			}
			w, err := skyworker.Start(context.Background(), bus.NS.NC, skyworker.Config{SkyPilot: sky})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(w.Stop)
			b.ResetTimer()
			for i := range b.N {
				names := make([]string, n)
				for j := range names {
					names[j] = fmt.Sprintf("scale-%d-%d", i, j)
				}
				bus.CreateAndWait(b, spec, names)
			}
			b.StopTimer()
			record(b, map[string]float64{"ms/cluster": float64(b.Elapsed().Milliseconds()) / float64(b.N*n)})
		})
	}
}

// scaleWorld adds nodes to the shared world up to the largest of
// scaleNodes, all on its port and accepting its key (so its ssh configs
// and pdsh reach them too), and one BYO cluster per size on the first
// nodes, Up with their agents running, on the gateway as shipped.
type scaleWorld struct {
	hosts []string
}

var (
	scaleOnce sync.Once
	scale     *scaleWorld
	scaleErr  error
)

func scaled(b *testing.B) (*env, *scaleWorld) {
	b.Helper()
	e := shared(b)
	scaleOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		scale, scaleErr = e.startScale(ctx)
	})
	if scaleErr != nil {
		b.Fatal(scaleErr)
	}
	return e, scale
}

func (e *env) startScale(ctx context.Context) (*scaleWorld, error) {
	total := scaleNodes[len(scaleNodes)-1]
	progress("starting %d more sshd nodes", total-len(e.nodes))
	nodes := append([]*sshnode.Node(nil), e.nodes...)
	extra := make([]*sshnode.Node, total-len(e.nodes))
	errs := make([]error, len(extra))
	// A few at a time: each sshd must be listening within sshnode's start
	// timeout, and 120 starting at once on two busy cores may not be.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range extra {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n, err := sshnode.Start(ctx, sshnode.Options{AuthorizedKeys: []string{e.authorizedKey}, Port: e.port})
			if err != nil {
				errs[i] = err
				return
			}
			extra[i] = n
			teardown.add("stop node "+n.Addr(), func() { _ = n.Close() })
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	nodes = append(nodes, extra...)
	w := &scaleWorld{}
	for _, n := range nodes {
		w.hosts = append(w.hosts, n.Addr())
	}
	s := e.stacks[0]
	// Smallest first: the 8-node cluster's nodes already run the agent
	// (the shared world's), so no size waits on a first placement.
	for _, size := range scaleNodes {
		name := fmt.Sprintf("nodes-%d", size)
		progress("creating %s", name)
		spec := rh.Spec{BYO: &rh.BYOSpec{IPs: w.hosts[:size], SSHUser: e.user, SSHPort: e.port}}
		if _, err := s.cl.Create(ctx, name, spec, e.secrets); err != nil {
			return nil, fmt.Errorf("bench: create %s: %w", name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		_, err := s.cl.WaitPhase(wctx, name, rh.PhaseUp)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bench: cluster %s: %w", name, err)
		}
		if e.agent {
			if err := waitAgents(ctx, s, name); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// BenchmarkScaleRunAll: `true` on every node of clusters of 8 to 128 nodes,
// with rhcli (the gateway as shipped: with the node agent unless
// RH_SSH_AGENT=off) and with pdsh as shipped, -f 64 (a new ssh connection
// per node, 64 at a time).
func BenchmarkScaleRunAll(b *testing.B) {
	e, w := scaled(b)
	s := e.stacks[0]
	for _, size := range scaleNodes {
		name := fmt.Sprintf("nodes-%d", size)
		b.Run(name, func(b *testing.B) {
			b.Run("rhcli-cli", func(b *testing.B) {
				measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
					return noTransfer(e.rhcliCmd(ctx, s, "run", name, "--node", "all", "--", "true"))
				}})
			})
			b.Run("rhcli-sdk", func(b *testing.B) {
				measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
					return noTransfer(sdkRun(ctx, s, name, "all", size))
				}})
			})
			b.Run("pdsh", func(b *testing.B) {
				env := []string{"PDSH_SSH_ARGS=-F " + e.sshConfig + " -x -l%u %h", "PDSH_SSH_ARGS_APPEND="}
				measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
					_, err := command(ctx, env, "pdsh", "-S", "-R", "ssh", "-f", fmt.Sprint(pdshFanout), "-l", e.user,
						"-w", strings.Join(w.hosts[:size], ","), "true")
					return noTransfer(err)
				}})
			})
		})
	}
}
