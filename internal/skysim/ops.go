package skysim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rhq/rh/internal/pickle"
)

type record = map[string]any

func (s *Server) opLaunch(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	taskYAML, ok1 := str(body, "task")
	name, ok2 := str(body, "cluster_name")
	if !ok1 {
		return "", "", nil, http.StatusUnprocessableEntity, missing("task")
	}
	if !ok2 {
		return "", "", nil, http.StatusUnprocessableEntity, missing("cluster_name")
	}
	return "sky.launch", name, func(ctx context.Context, r *request) (any, error) {
		return s.launch(ctx, r, name, taskYAML)
	}, 0, nil
}

func (s *Server) launch(ctx context.Context, r *request, name, taskYAML string) (any, error) {
	if !validName(name) {
		return nil, &skyError{"InvalidClusterNameError", fmt.Sprintf("Cluster name '%s' is invalid: ensure it is fully matching regex: [a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?", name)}
	}
	t, err := parseTask(taskYAML)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c, exists := s.clusters[name]
	if exists && c.status == "UP" {
		// Reuse: a new job, no new machines.
		s.applyTaskAutostop(c, t)
		v, err := s.launchResult(c, t)
		s.mu.Unlock()
		return v, err
	}
	if !exists {
		c = &cluster{name: name, hash: clusterHash(name, r.userID), userHash: userHash(r.userID), userName: r.userName}
		s.clusters[name] = c
	}
	c.status = "INIT"
	c.cloud, c.region, c.zone = t.cloud, t.region, t.zone
	c.instanceType, c.accelerators, c.cpus, c.memory = t.instanceType, t.accelerators, t.cpus, t.memory
	c.diskSize, c.useSpot, c.imageID, c.ports = t.diskSize, t.useSpot, t.imageID, t.ports
	c.autostop, c.toDown = -1, false
	s.cache[name] = s.recordOf(c)
	delay := s.launchDelay
	quota := s.quotaErrors > 0
	if quota {
		s.quotaErrors--
	}
	s.mu.Unlock()

	s.setStatus(r, "RUNNING", "provisioning")
	if err := sleepCtx(ctx, delay); err != nil {
		// Cancelled mid-provision: the record stays INIT, as in SkyPilot.
		return nil, err
	}
	if quota {
		s.removeCluster(name, c)
		return nil, &skyError{"ResourcesUnavailableError", fmt.Sprintf(
			"Failed to provision all possible launchable resources. Relax the task's resource requirements: %dx %s(%s). Reason: [%s/%s] InsufficientInstanceCapacity / quota exceeded.",
			t.numNodes, strings.ToUpper(t.cloud), t.instanceType, t.cloud, t.region)}
	}
	if s.opts.Nodes == nil {
		s.removeCluster(name, c)
		return nil, &skyError{"ResourcesUnavailableError", "no node provider configured in the simulator"}
	}
	eps, err := s.opts.Nodes.Provision(ctx, name, t.numNodes)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.removeCluster(name, c)
		_ = s.opts.Nodes.Release(context.Background(), name)
		return nil, &skyError{"ResourcesUnavailableError", "Failed to provision: " + err.Error()}
	}
	if len(eps) != t.numNodes {
		s.removeCluster(name, c)
		_ = s.opts.Nodes.Release(context.Background(), name)
		return nil, &skyError{"RuntimeError", fmt.Sprintf("provider returned %d nodes, want %d", len(eps), t.numNodes)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusters[name] != c {
		return nil, &skyError{"ClusterDoesNotExist", fmt.Sprintf("Cluster '%s' was removed during launch.", name)}
	}
	c.nodes = eps
	c.status = "UP"
	c.launchedAt = time.Now()
	s.provisions++
	s.applyTaskAutostop(c, t)
	return s.launchResult(c, t)
}

// applyTaskAutostop sets autostop from the YAML and restarts the idle
// clock (a launch counts as activity); s.mu is held.
func (s *Server) applyTaskAutostop(c *cluster, t *task) {
	if t.autostop != nil {
		c.autostop, c.toDown = t.autostop.idleMinutes, t.autostop.down
	}
	c.lastUse = "sky launch"
	s.armAutostop(c)
	s.cache[c.name] = s.recordOf(c)
}

// launchResult builds {"job_id", "handle"}; s.mu is held.
func (s *Server) launchResult(c *cluster, t *task) (any, error) {
	var job any
	if t.hasRun {
		c.jobs++
		job = c.jobs
	}
	h, err := pickle.DumpsBase64(buildHandle(c))
	if err != nil {
		return nil, err
	}
	return map[string]any{"job_id": job, "handle": h}, nil
}

func (s *Server) removeCluster(name string, c *cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusters[name] == c {
		if c.timer != nil {
			c.timer.Stop()
		}
		delete(s.clusters, name)
		delete(s.cache, name)
	}
}

func (s *Server) opDown(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	return s.stopOrDown(body, true)
}

func (s *Server) opStop(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	return s.stopOrDown(body, false)
}

func (s *Server) stopOrDown(body map[string]json.RawMessage, down bool) (string, string, func(context.Context, *request) (any, error), int, error) {
	name, ok := str(body, "cluster_name")
	if !ok {
		return "", "", nil, http.StatusUnprocessableEntity, missing("cluster_name")
	}
	op := "sky.stop"
	if down {
		op = "sky.down"
	}
	return op, name, func(ctx context.Context, r *request) (any, error) {
		s.mu.Lock()
		c, ok := s.clusters[name]
		if !ok {
			delete(s.cache, name)
			s.mu.Unlock()
			return nil, &skyError{"ClusterDoesNotExist", fmt.Sprintf("Cluster '%s' does not exist.", name)}
		}
		if c.timer != nil {
			c.timer.Stop()
			c.timer = nil
		}
		if down {
			delete(s.clusters, name)
			delete(s.cache, name)
		} else {
			c.status, c.nodes = "STOPPED", nil
			s.cache[name] = s.recordOf(c)
		}
		s.mu.Unlock()
		if s.opts.Nodes != nil {
			if err := s.opts.Nodes.Release(ctx, name); err != nil {
				return nil, &skyError{"RuntimeError", "release nodes: " + err.Error()}
			}
		}
		return nil, nil
	}, 0, nil
}

func (s *Server) opAutostop(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	name, ok := str(body, "cluster_name")
	if !ok {
		return "", "", nil, http.StatusUnprocessableEntity, missing("cluster_name")
	}
	var idle int
	if json.Unmarshal(body["idle_minutes"], &idle) != nil {
		return "", "", nil, http.StatusUnprocessableEntity, missing("idle_minutes")
	}
	down := boolean(body, "down")
	return "sky.autostop", name, func(ctx context.Context, r *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c, ok := s.clusters[name]
		if !ok {
			return nil, &skyError{"ClusterDoesNotExist", fmt.Sprintf("Cluster '%s' does not exist.", name)}
		}
		if c.status != "UP" {
			return nil, &skyError{"ClusterNotUpError", fmt.Sprintf("Cluster '%s' is not UP (status: %s).", name, c.status)}
		}
		if idle < 0 {
			c.autostop, c.toDown = -1, false
		} else {
			c.autostop, c.toDown = idle, down
		}
		s.armAutostop(c)
		s.cache[name] = s.recordOf(c)
		return nil, nil
	}, 0, nil
}

func (s *Server) opStatus(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	var names []string
	if raw, ok := body["cluster_names"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &names); err != nil {
			return "", "", nil, http.StatusUnprocessableEntity, fmt.Errorf("cluster_names must be a list of strings")
		}
	}
	refresh := "NONE"
	if v, ok := str(body, "refresh"); ok {
		refresh = v
	}
	switch refresh {
	case "NONE", "AUTO", "FORCE":
	default:
		return "", "", nil, http.StatusUnprocessableEntity, fmt.Errorf("refresh must be NONE, AUTO or FORCE")
	}
	includeHandle := true
	if raw, ok := body["include_handle"]; ok {
		_ = json.Unmarshal(raw, &includeHandle)
	}
	includeCreds := true
	if raw, ok := body["include_credentials"]; ok {
		_ = json.Unmarshal(raw, &includeCreds)
	}
	return "sky.status", "", func(ctx context.Context, r *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if refresh != "NONE" {
			s.syncCache(names)
		}
		out := []record{}
		keys := names
		if len(keys) == 0 {
			keys = sortedKeys(s.cache)
		}
		for _, n := range keys {
			rec, ok := s.cache[n]
			if !ok {
				continue
			}
			cp := record{}
			for k, v := range rec {
				cp[k] = v
			}
			if !includeHandle {
				cp["handle"] = "gAROLg=="
			}
			if !includeCreds {
				delete(cp, "credentials")
			}
			out = append(out, cp)
		}
		return out, nil
	}, 0, nil
}

func (s *Server) opCancel(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	var ids []string
	if raw, ok := body["request_ids"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &ids); err != nil {
			return "", "", nil, http.StatusUnprocessableEntity, fmt.Errorf("request_ids must be a list of strings")
		}
	}
	all := boolean(body, "all")
	return "sky.api_cancel", "", func(ctx context.Context, self *request) (any, error) {
		var targets []*request
		if all {
			s.mu.Lock()
			for _, r := range s.requests {
				if r != self {
					targets = append(targets, r)
				}
			}
			s.mu.Unlock()
		}
		for _, id := range ids {
			if r, _ := s.resolve(id); r != nil {
				targets = append(targets, r)
			}
		}
		cancelled := []string{}
		for _, r := range targets {
			s.mu.Lock()
			live := !isTerminal(r.status)
			if live {
				r.status, r.finishedAt = "CANCELLED", nowUnix()
				close(r.done)
			}
			s.mu.Unlock()
			if live {
				r.cancel()
				cancelled = append(cancelled, r.id)
			}
		}
		return cancelled, nil
	}, 0, nil
}

// recordOf renders a cluster as /status does; s.mu is held.
func (s *Server) recordOf(c *cluster) record {
	rec := record{
		"name": c.name, "status": c.status, "autostop": c.autostop, "to_down": c.toDown,
		"cluster_hash": c.hash, "cloud": cloudDisplay(c.cloud), "region": c.region,
		"nodes": len(c.nodes), "user_hash": c.userHash, "user_name": c.userName, "workspace": "default",
		"resources_str": fmt.Sprintf("%dx %s(%s)", max(len(c.nodes), 1), cloudDisplay(c.cloud), c.instanceType),
		"handle":        "gAROLg==",
	}
	if c.zone != "" {
		rec["zone"] = c.zone
	}
	if !c.launchedAt.IsZero() {
		rec["launched_at"] = c.launchedAt.Unix()
	}
	if c.lastUse != "" {
		rec["last_use"] = c.lastUse
	}
	if c.cpus != "" {
		rec["cpus"] = c.cpus
	} else {
		rec["cpus"] = "8.0"
	}
	if c.memory != "" {
		rec["memory"] = c.memory
	} else {
		rec["memory"] = "32.0"
	}
	if c.accelerators != "" {
		n, cnt := splitAcc(c.accelerators)
		rec["accelerators"] = fmt.Sprintf("{'%s': %v}", n, cnt)
	}
	if len(c.nodes) > 0 {
		if h, err := pickle.DumpsBase64(buildHandle(c)); err == nil {
			rec["handle"] = h
		}
		head := c.nodes[0]
		creds := record{
			"ssh_user":         head.SSHUser,
			"ssh_private_key":  "~/.sky/clients/" + c.userHash + "/ssh/sky-key",
			"ssh_control_name": c.hash[:10],
		}
		if len(head.PrivateKeyPEM) > 0 {
			creds["ssh_private_key_content"] = string(head.PrivateKeyPEM)
		}
		rec["credentials"] = creds
	}
	return rec
}

func cloudDisplay(c string) string {
	if g, ok := cloudClasses[c]; ok {
		return g.Name
	}
	return strings.ToUpper(c)
}

func userHash(id string) string {
	if len(id) >= 8 {
		return id
	}
	return fmt.Sprintf("%08s", id)
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		alpha := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		switch {
		case i == 0 && !alpha:
			return false
		case alpha || r >= '0' && r <= '9':
		case (r == '-' || r == '_' || r == '.') && i != len(n)-1:
		default:
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
