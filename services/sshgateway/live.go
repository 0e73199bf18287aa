package sshgateway

import (
	"context"
	"sort"
	"sync"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/agent"
)

// Live status: Runhouse's cluster status() without a port. Each node's agent
// reports its version, uptime, CPU, memory, disk and GPU use and the commands
// it runs; a node without an agent says why, and lists the runs this gateway
// has going there over plain sessions.

// Status answers the live state of a cluster's nodes (all by default).
func (s *Service) Status(ctx context.Context, req api.LiveRequest) (*api.LiveReply, error) {
	return s.live(ctx, req, false)
}

// RestartAgent kills each selected node's agent (all by default) and starts
// a fresh one; the answer shows the new agents.
func (s *Service) RestartAgent(ctx context.Context, req api.LiveRequest) (*api.LiveReply, error) {
	return s.live(ctx, req, true)
}

func (s *Service) live(ctx context.Context, req api.LiveRequest, restart bool) (*api.LiveReply, error) {
	need := rh.AccessRead
	if restart {
		need = rh.AccessWrite
	}
	ts, err := s.clusterNodes(ctx, req.Name, need)
	if err != nil {
		return nil, err
	}
	if req.Node == "" {
		req.Node = api.NodeAll
	}
	sel, err := selectNodes(req.Node, ts)
	if err != nil {
		return nil, err
	}
	out := &api.LiveReply{Name: req.Name, Nodes: make([]api.NodeLive, len(sel))}
	var wg sync.WaitGroup
	for i, t := range sel {
		wg.Go(func() {
			nl := api.NodeLive{Node: t.Label, Runs: []api.RunLive{}}
			var ac *agent.Client
			var err error
			if restart {
				ac, err = s.restartAgent(ctx, req.Name, t)
			} else {
				ac, err = s.agentFor(ctx, req.Name, t)
			}
			na := s.nodeAgent(t.Target)
			if ac != nil {
				var st agent.Status
				if st, err = ac.Status(ctx); err == nil {
					fillLive(&nl, st)
				}
			}
			nl.Agent, nl.Message = s.agentState(na, err)
			na.mu.Lock()
			nl.AgentRestarts = na.restarts
			if ac != nil && na.cur == ac {
				nl.AgentStartedAt = na.started
			}
			na.mu.Unlock()
			if ac == nil {
				nl.Runs = append(nl.Runs, s.sessionRuns(req.Name, t.Label)...)
			}
			out.Nodes[i] = nl
		})
	}
	wg.Wait()
	return out, nil
}

func fillLive(nl *api.NodeLive, st agent.Status) {
	nl.AgentVersion, nl.AgentPID = st.AgentVersion, st.PID
	nl.UptimeSeconds = st.Uptime.Seconds()
	nl.CPUPercent = st.CPUPercent
	nl.LoadAverage = st.LoadAverage[:]
	nl.MemoryTotal = st.MemoryTotal
	if st.MemoryTotal >= st.MemoryAvail {
		nl.MemoryUsed = st.MemoryTotal - st.MemoryAvail
	}
	// The home's file system is where work lands; the first disk is it.
	if len(st.Disks) > 0 {
		d := st.Disks[0]
		nl.DiskPath, nl.DiskUsed, nl.DiskTotal = d.Path, d.Used, d.Total
	}
	for _, g := range st.GPUs {
		nl.GPUs = append(nl.GPUs, api.GPULive{Index: g.Index, Name: g.Name, UtilPercent: g.UtilPercent, MemoryUsed: g.MemoryUsed, MemoryTotal: g.MemoryTotal})
	}
	for _, r := range st.Runs {
		nl.Runs = append(nl.Runs, api.RunLive{PID: r.PID, Command: r.Command, Started: r.Started})
	}
	nl.SampledAt = st.SampledAt
}

// sessionRuns lists the runs this gateway has going on a node over plain
// sessions (the node has no agent to ask).
func (s *Service) sessionRuns(cluster, label string) []api.RunLive {
	var out []api.RunLive
	s.active.Range(func(_, v any) bool {
		r := v.(*run)
		if r.req.Name != cluster {
			return true
		}
		for _, t := range r.nodes {
			if t.Label == label {
				out = append(out, api.RunLive{RunID: r.id, Command: sessionCommand(r.req), Started: r.started})
			}
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// agentsFor tells, per node, whether it runs the agent, starting it where it
// should run and does not yet (bounded, so a slow placement does not hold up
// the caller: that node then counts as without agent this time).
func (s *Service) agentsFor(ctx context.Context, cluster string, sel []nodeTarget) []bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := make([]bool, len(sel))
	var wg sync.WaitGroup
	for i, t := range sel {
		wg.Go(func() {
			ac, _ := s.agentFor(ctx, cluster, t)
			out[i] = ac != nil
		})
	}
	wg.Wait()
	return out
}
