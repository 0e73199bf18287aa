package serve

import (
	"context"

	"github.com/rhq/rh/services/skyworker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// startSkyworker runs the on-demand worker against the SkyPilot API server of
// SKYPILOT_API_SERVER_ENDPOINT (default 127.0.0.1:46580), or with --sim
// against an in-process simulator stopped with the worker. A server that is
// not running does not stop rh from starting: creates say what to fix.
func startSkyworker(ctx context.Context, d Deps) (Service, error) {
	cfg := skyworker.Config{SkyPilotConfig: skypilot.ConfigFromEnv(d.Opts.Getenv), ServiceConfig: d.workerConfig()}
	var sim *simServer
	if d.Opts.Sim {
		var err error
		if sim, err = startSkySim(ctx, d.Logger); err != nil {
			return nil, err
		}
		cfg.SkyPilotConfig = skypilot.Config{Endpoint: sim.URL, Logger: d.Logger}
	}
	w, err := skyworker.Start(ctx, d.NC, cfg)
	if err != nil {
		if sim != nil {
			sim.Stop()
		}
		return nil, err
	}
	return stopAll{w.Stop, sim}, nil
}

// stopAll stops the worker before the simulator it talks to.
type stopAll struct {
	stop func()
	sim  *simServer
}

func (s stopAll) Stop() {
	s.stop()
	if s.sim != nil {
		s.sim.Stop()
	}
}
