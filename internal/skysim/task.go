package skysim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Keys SkyPilot's task schema accepts (sky/utils/schemas.py). Anything
// else is rejected after the request was accepted, as SkyPilot does.
var (
	taskKeys = []string{"name", "workdir", "event_callback", "num_nodes", "resources", "file_mounts",
		"setup", "run", "envs", "secrets", "service", "inputs", "outputs", "config", "volumes", "pool"}
	resourceKeys = []string{"infra", "cloud", "region", "zone", "accelerators", "gpus", "instance_type",
		"cpus", "memory", "disk_size", "disk_tier", "network_tier", "use_spot", "job_recovery",
		"spot_recovery", "image_id", "ports", "labels", "accelerator_args", "any_of", "ordered",
		"autostop", "priority", "_docker_login_config", "_is_image_managed", "_requires_fuse",
		"_cluster_config_overrides", "volumes"}
)

// task is the part of a task YAML the simulator acts on.
type task struct {
	name         string
	numNodes     int
	cloud        string
	region       string
	zone         string
	instanceType string
	accelerators string
	cpus         string
	memory       string
	diskSize     int
	useSpot      bool
	imageID      string
	ports        []any
	hasRun       bool
	autostop     *autostopCfg
}

type autostopCfg struct {
	idleMinutes int
	down        bool
}

// configError is raised as InvalidSkyPilotConfigError.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func parseTask(src string) (*task, error) {
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(src), &raw); err != nil {
		return nil, &configError{"Invalid task YAML: " + err.Error()}
	}
	if err := checkKeys(raw, taskKeys, ""); err != nil {
		return nil, err
	}
	t := &task{numNodes: 1, diskSize: 256, cloud: "aws", region: "us-east-1"}
	t.name, _ = raw["name"].(string)
	if v, ok := raw["num_nodes"]; ok {
		n, ok := v.(float64)
		if !ok || n < 1 || n != float64(int(n)) {
			return nil, &configError{fmt.Sprintf("Invalid task YAML: num_nodes must be a positive integer, got %v", v)}
		}
		t.numNodes = int(n)
	}
	_, t.hasRun = raw["run"]
	res, _ := raw["resources"].(map[string]any)
	if raw["resources"] != nil && res == nil {
		return nil, &configError{"Invalid task YAML: resources must be a mapping"}
	}
	if err := checkKeys(res, resourceKeys, "resources."); err != nil {
		return nil, err
	}
	if _, ok := res["infra"]; ok {
		for _, k := range []string{"cloud", "region", "zone"} {
			if _, dup := res[k]; dup {
				return nil, &configError{fmt.Sprintf("Cannot specify both `infra` and `%s` in resources.", k)}
			}
		}
		parts := strings.Split(fmt.Sprint(res["infra"]), "/")
		t.cloud = strings.ToLower(parts[0])
		if t.cloud == "k8s" {
			t.cloud = "kubernetes"
		}
		t.region = ""
		if len(parts) > 1 {
			t.region = parts[1]
		}
		if len(parts) > 2 {
			t.zone = parts[2]
		}
	} else if c, ok := res["cloud"].(string); ok {
		t.cloud = strings.ToLower(c)
	}
	if _, ok := cloudClasses[t.cloud]; !ok && t.cloud != "*" {
		return nil, &configError{fmt.Sprintf("Invalid cloud %q.", t.cloud)}
	}
	if t.cloud == "*" {
		t.cloud = "aws"
	}
	if r, ok := res["region"].(string); ok {
		t.region = r
	}
	if t.region == "" {
		t.region = map[string]string{"aws": "us-east-1", "gcp": "us-central1", "azure": "eastus",
			"lambda": "us-east-1", "kubernetes": "in-cluster"}[t.cloud]
	}
	if z, ok := res["zone"].(string); ok {
		t.zone = z
	}
	acc := res["accelerators"]
	if acc == nil {
		acc = res["gpus"]
	}
	if acc != nil {
		t.accelerators = fmt.Sprint(acc)
	}
	t.instanceType, _ = res["instance_type"].(string)
	if t.instanceType == "" {
		t.instanceType = "m6i.2xlarge"
		if t.accelerators != "" {
			t.instanceType = "p4d.24xlarge"
		}
	}
	if v, ok := res["cpus"]; ok {
		t.cpus = fmt.Sprint(v)
	}
	if v, ok := res["memory"]; ok {
		t.memory = fmt.Sprint(v)
	}
	if v, ok := res["disk_size"].(float64); ok {
		t.diskSize = int(v)
	}
	t.useSpot, _ = res["use_spot"].(bool)
	t.imageID, _ = res["image_id"].(string)
	switch p := res["ports"].(type) {
	case []any:
		t.ports = p
	case nil:
	default:
		t.ports = []any{p}
	}
	for i, p := range t.ports {
		if f, ok := p.(float64); ok {
			t.ports[i] = strconv.Itoa(int(f))
		} else {
			t.ports[i] = fmt.Sprint(p)
		}
	}
	switch a := res["autostop"].(type) {
	case nil:
	case bool:
		if a {
			t.autostop = &autostopCfg{idleMinutes: 5}
		}
	case float64:
		t.autostop = &autostopCfg{idleMinutes: int(a)}
	case map[string]any:
		if err := checkKeys(a, []string{"idle_minutes", "down", "wait_for", "hook", "hook_timeout"}, "resources.autostop."); err != nil {
			return nil, err
		}
		cfg := &autostopCfg{idleMinutes: 5}
		if m, ok := a["idle_minutes"].(float64); ok {
			cfg.idleMinutes = int(m)
		}
		cfg.down, _ = a["down"].(bool)
		t.autostop = cfg
	default:
		return nil, &configError{fmt.Sprintf("Invalid task YAML: resources.autostop: %v", a)}
	}
	return t, nil
}

func checkKeys(m map[string]any, known []string, prefix string) error {
	var bad []string
	for k := range m {
		if !contains(known, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	k := bad[0]
	best, bestD := "", 1<<30
	for _, cand := range known {
		if d := levenshtein(k, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	if bestD <= max(2, len(k)/3) {
		return &configError{fmt.Sprintf("Invalid task YAML: Instead of '%s%s', did you mean '%s%s'?", prefix, k, prefix, best)}
	}
	return &configError{fmt.Sprintf("Invalid task YAML: Additional properties are not allowed ('%s%s' was unexpected)", prefix, k)}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
