package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/simnodes"
	"github.com/rhq/rh/internal/skysim"
)

// simServer is an in-process simulator of a cloud API on a loopback port,
// whose machines are real sshd nodes. Stop ends the server and the nodes.
type simServer struct {
	URL   string
	Nodes *simnodes.Provider

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Stop stops the server, then every node it started.
func (s *simServer) Stop() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		_ = s.Nodes.Close()
	})
}

// startSkySim serves a SkyPilot API simulator on a free loopback port, so
// `rhcli serve --sim` needs no cloud account: the skyworker talks to it over
// the same HTTP protocol as to a real API server.
func startSkySim(ctx context.Context, log *slog.Logger) (*simServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("skypilot simulator: listen: %w", err)
	}
	nodes := simnodes.New(simnodes.Options{Logger: log})
	sim := skysim.New(skysim.Options{Nodes: nodes, Logger: log.With("component", "skysim")})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &simServer{URL: "http://" + ln.Addr().String(), Nodes: nodes, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := sim.Serve(runCtx, ln); err != nil {
			log.Error("skypilot simulator stopped", "err", err)
		}
	}()
	log.Info("SkyPilot API simulator (--sim): machines are local sshd nodes", "url", s.URL)
	return s, nil
}

// startSageMakerSim serves the SageMaker simulator — SageMaker's JSON 1.1
// API and STS on one loopback port — so `rhcli serve --sim` runs SageMaker
// clusters with no AWS account: the real SDK, SigV4 signing included, talks
// to it through BaseEndpoint. Jobs run at 1/20 of AWS's pace (a minute of
// Starting takes 3 s), slow enough to watch the transitions go by. Its
// instances are local sshd nodes reached through `rhcli sim ssm-proxy`.
func startSageMakerSim(ctx context.Context, log *slog.Logger) (*simServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sagemaker simulator: listen: %w", err)
	}
	nodes := simnodes.New(simnodes.Options{Logger: log})
	sim := sagemakersim.New(sagemakersim.Options{Nodes: nodes.SageMaker(), TimeScale: 0.05, Logger: log.With("component", "sagemakersim")})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &simServer{URL: "http://" + ln.Addr().String(), Nodes: nodes, cancel: cancel, done: make(chan struct{})}
	hs := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-runCtx.Done()
		sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = hs.Shutdown(sctx)
	}()
	go func() {
		defer close(s.done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sagemaker simulator stopped", "err", err)
		}
		// Stop the jobs' state machines and release their nodes before
		// Stop closes the provider.
		sim.Close()
	}()
	log.Info("SageMaker API simulator (--sim): instances are local sshd nodes", "url", s.URL)
	return s, nil
}
