package bench

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/services/sshgateway"
)

// The node agent is being wired into the gateway through three config
// fields: DisableAgent, AgentBinaries and AgentVersion. They are set by name
// so that this package builds both before and after they land: without them
// the gateway runs plain SSH sessions and the benchmarks say so; with them,
// the default stack runs the agent and a second stack runs without it, so
// one run shows both.

// agentAvailable reports whether the gateway has a node agent to turn on
// (RH_SSH_AGENT=off turns it off in the gateway, and so here).
func agentAvailable() bool {
	_, ok := reflect.TypeFor[sshgateway.Config]().FieldByName("DisableAgent")
	return ok && os.Getenv("RH_SSH_AGENT") != "off"
}

// configureAgent turns the gateway's node agent on (binary is the rhcli to
// install on the nodes, built with agent.Version = version) or off.
func configureAgent(cfg *sshgateway.Config, enabled bool, binary, version string) error {
	v := reflect.ValueOf(cfg).Elem()
	disable := v.FieldByName("DisableAgent")
	if !disable.IsValid() {
		if enabled {
			return fmt.Errorf("bench: sshgateway.Config has no DisableAgent field: the gateway has no agent to enable")
		}
		return nil
	}
	if disable.Kind() != reflect.Bool {
		return fmt.Errorf("bench: sshgateway.Config.DisableAgent is a %s; update configureAgent (bench/agent_test.go)", disable.Type())
	}
	disable.SetBool(!enabled)
	if !enabled {
		return nil
	}
	if f := v.FieldByName("AgentVersion"); f.IsValid() {
		if f.Kind() != reflect.String {
			return fmt.Errorf("bench: sshgateway.Config.AgentVersion is a %s; update configureAgent (bench/agent_test.go)", f.Type())
		}
		f.SetString(version)
	}
	if f := v.FieldByName("AgentBinaries"); f.IsValid() {
		t := f.Type()
		switch {
		case t.Kind() == reflect.String:
			f.SetString(binary)
		case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
			// Keyed by Go architecture; the nodes are this machine. Without
			// it the gateway would place its own executable: the test binary.
			m := reflect.MakeMap(t)
			m.SetMapIndex(reflect.ValueOf(runtime.GOARCH).Convert(t.Key()), reflect.ValueOf(binary).Convert(t.Elem()))
			f.Set(m)
		default:
			return fmt.Errorf("bench: sshgateway.Config.AgentBinaries is a %s; update configureAgent (bench/agent_test.go)", t)
		}
	}
	return nil
}

// waitAgents waits until every node of cluster runs the agent, as the
// gateway's live status reports it, so that no case measures the fallback
// to plain sessions by accident. The status endpoint comes with the agent.
func waitAgents(ctx context.Context, s *stack, cluster string) error {
	var reply struct {
		Nodes []struct{ Node, Agent, Message string }
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := s.cl.Call(ctx, api.SSHSubject("status"), map[string]string{"name": cluster}, &reply)
		var waiting []string
		for _, n := range reply.Nodes {
			if n.Agent != "running" {
				waiting = append(waiting, fmt.Sprintf("%s: %s %s", n.Node, n.Agent, n.Message))
			}
		}
		if err == nil && len(reply.Nodes) > 0 && len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%s", strings.Join(waiting, "; "))
			}
			return fmt.Errorf("bench: agents of %s not running: %w", cluster, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
