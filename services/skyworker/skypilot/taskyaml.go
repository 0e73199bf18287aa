package skypilot

import (
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/rhq/rh/internal/lazyre"
)

// TaskSpec is rh's on-demand cluster request, to be turned into a SkyPilot
// task YAML.
type TaskSpec struct {
	Name     string
	NumNodes int // default 1
	// InstanceType takes three forms: an instance name ("m5.xlarge"), an
	// accelerator spec ("A100:4"), or a CPU count ("CPU:2+").
	InstanceType string
	// Provider is aws, gcp, azure, lambda, kubernetes or cheapest (or "",
	// same as cheapest: let SkyPilot's optimizer choose).
	Provider     string
	Region       string // needs a Provider
	UseSpot      bool
	ImageID      string
	Memory       string // e.g. "32", "32+"
	DiskSize     int    // GB; 0 = SkyPilot's default
	OpenPorts    []string
	AutostopMins int // −1: no autostop; otherwise autostop {idle_minutes: N, down: true}
	Envs         map[string]string
	Setup        string
	Run          string
}

// SpecError names the TaskSpec field a value was rejected for.
type SpecError struct {
	Field, Value, Rule string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("skypilot: %s %q: %s", e.Field, e.Value, e.Rule)
}

var (
	providers = map[string]string{
		"aws": "aws", "gcp": "gcp", "azure": "azure", "lambda": "lambda",
		"kubernetes": "kubernetes", "k8s": "kubernetes", "cheapest": "",
	}
	countRE  = lazyre.New(`^[0-9]+(\.[0-9]+)?\+?$`)
	accRE    = lazyre.New(`^[A-Za-z][A-Za-z0-9_-]*:[0-9]+(\.[0-9]+)?$`)
	regionRE = lazyre.New(`^[A-Za-z0-9][-_.A-Za-z0-9]*$`)
	portRE   = lazyre.New(`^[0-9]{1,5}(-[0-9]{1,5})?$`)
)

// TaskYAML renders spec as a SkyPilot task YAML (only keys SkyPilot knows:
// a misspelt key would be accepted and then fail the request).
func TaskYAML(spec TaskSpec) (string, error) {
	res := map[string]any{}
	if spec.NumNodes < 0 {
		return "", &SpecError{"num_nodes", strconv.Itoa(spec.NumNodes), "must be ≥ 1"}
	}
	it := strings.TrimSpace(spec.InstanceType)
	switch {
	case it == "":
	case strings.HasPrefix(strings.ToUpper(it), "CPU:"):
		cpus := it[4:]
		if !countRE.MatchString(cpus) {
			return "", &SpecError{"instance_type", it, `CPU form is "CPU:<n>" or "CPU:<n>+"`}
		}
		res["cpus"] = cpus
	case strings.Contains(it, ":"):
		if !accRE.MatchString(it) {
			return "", &SpecError{"instance_type", it, `accelerator form is "<name>:<count>", e.g. "A100:4"`}
		}
		res["accelerators"] = it
	default:
		if strings.ContainsAny(it, " \t/") {
			return "", &SpecError{"instance_type", it, "not an instance type name"}
		}
		res["instance_type"] = it
	}

	prov, ok := providers[strings.ToLower(strings.TrimSpace(spec.Provider))]
	if !ok && spec.Provider != "" {
		return "", &SpecError{"provider", spec.Provider, "must be aws, gcp, azure, lambda, kubernetes or cheapest"}
	}
	switch {
	case spec.Region != "" && prov == "":
		// SkyPilot's infra needs a cloud before a region; guessing one
		// would silently pin the cluster to the wrong cloud.
		return "", &SpecError{"region", spec.Region, "needs a provider other than cheapest (infra is cloud/region)"}
	case spec.Region != "":
		if !regionRE.MatchString(spec.Region) {
			return "", &SpecError{"region", spec.Region, "not a region name"}
		}
		res["infra"] = prov + "/" + spec.Region
	case prov != "":
		res["infra"] = prov
	}
	if spec.UseSpot {
		res["use_spot"] = true
	}
	if spec.ImageID != "" {
		res["image_id"] = spec.ImageID
	}
	if m := strings.TrimSpace(spec.Memory); m != "" {
		if !countRE.MatchString(m) {
			return "", &SpecError{"memory", m, `GB count, e.g. "32" or "32+"`}
		}
		res["memory"] = m
	}
	if spec.DiskSize < 0 {
		return "", &SpecError{"disk_size", strconv.Itoa(spec.DiskSize), "must be ≥ 0"}
	} else if spec.DiskSize > 0 {
		res["disk_size"] = spec.DiskSize
	}
	if len(spec.OpenPorts) > 0 {
		var ports []any
		for _, p := range spec.OpenPorts {
			p = strings.TrimSpace(p)
			if !portRE.MatchString(p) {
				return "", &SpecError{"open_ports", p, `a port "8080" or range "8000-8010"`}
			}
			if n, err := strconv.Atoi(p); err == nil {
				if n < 1 || n > 65535 {
					return "", &SpecError{"open_ports", p, "must be 1-65535"}
				}
				ports = append(ports, n)
			} else {
				ports = append(ports, p)
			}
		}
		res["ports"] = ports
	}
	switch {
	case spec.AutostopMins == -1:
	case spec.AutostopMins < -1:
		return "", &SpecError{"autostop_mins", strconv.Itoa(spec.AutostopMins), "−1 (none) or ≥ 0"}
	default:
		res["autostop"] = map[string]any{"idle_minutes": spec.AutostopMins, "down": true}
	}

	task := map[string]any{}
	if spec.Name != "" {
		if err := ValidateClusterName(spec.Name); err != nil {
			return "", &SpecError{"name", spec.Name, err.Error()}
		}
		task["name"] = spec.Name
	}
	if spec.NumNodes > 1 {
		task["num_nodes"] = spec.NumNodes
	}
	if len(res) > 0 {
		task["resources"] = res
	}
	if len(spec.Envs) > 0 {
		task["envs"] = spec.Envs
	}
	if spec.Setup != "" {
		task["setup"] = spec.Setup
	}
	if spec.Run != "" {
		task["run"] = spec.Run
	}
	out, err := yaml.Marshal(task)
	if err != nil {
		return "", fmt.Errorf("skypilot: render task YAML: %w", err)
	}
	return string(out), nil
}
