package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

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
