package skysim

import (
	"fmt"
	"sort"

	"github.com/rhq/rh/internal/pickle"
)

// cloudClasses maps the infra cloud to the class SkyPilot pickles.
var cloudClasses = map[string]pickle.Global{
	"aws":        {Module: "sky.clouds.aws", Name: "AWS"},
	"gcp":        {Module: "sky.clouds.gcp", Name: "GCP"},
	"azure":      {Module: "sky.clouds.azure", Name: "Azure"},
	"lambda":     {Module: "sky.clouds.lambda_cloud", Name: "Lambda"},
	"kubernetes": {Module: "sky.clouds.kubernetes", Name: "Kubernetes"},
}

// dict builds a *pickle.Dict from alternating string keys and values,
// keeping order: attribute order is __dict__ insertion order in Python.
func dict(kv ...any) *pickle.Dict {
	d := pickle.NewDict()
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

func optStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// buildHandle returns the object tree of a CloudVmRayResourceHandle
// (_VERSION 12) with the attribute names and nesting SkyPilot uses:
// Resources with a cloud object, ClusterInfo with InstanceInfos.
func buildHandle(c *cluster) *pickle.Object {
	cloud := cloudClasses[c.cloud]
	if cloud.Name == "" {
		cloud = cloudClasses["aws"]
	}
	onCloud := c.name + "-" + c.userHash[:4]
	instances := pickle.NewDict()
	type node struct {
		id       string
		in, ex   string
		port     int
		isHead   bool
		original int
	}
	var nodes []node
	for i, ep := range c.nodes {
		id := fmt.Sprintf("i-%s%02d", c.hash[:10], i)
		role := "worker"
		if i == 0 {
			role = "head"
		}
		info := &pickle.Object{Module: "sky.provision.common", Name: "InstanceInfo", Args: []any{}, State: dict(
			"instance_id", id,
			"internal_ip", ep.InternalIP,
			"external_ip", optStr(ep.ExternalIP),
			"tags", dict("ray-cluster-name", onCloud, "ray-node-type", role),
			"ssh_port", int64(ep.SSHPort),
		)}
		instances.Set(id, &pickle.List{info})
		ex := ep.ExternalIP
		if ex == "" {
			ex = ep.InternalIP
		}
		nodes = append(nodes, node{id: id, in: ep.InternalIP, ex: ex, port: ep.SSHPort, isHead: i == 0, original: i})
	}
	// Head first, then workers sorted by external IP string.
	if len(nodes) > 1 {
		w := nodes[1:]
		sort.SliceStable(w, func(i, j int) bool { return w[i].ex < w[j].ex })
	}
	ips := pickle.List{}
	ports := pickle.List{}
	for _, n := range nodes {
		ips = append(ips, pickle.Tuple{n.in, n.ex})
		ports = append(ports, int64(n.port))
	}
	var headID any
	if len(nodes) > 0 {
		headID = nodes[0].id
	}
	sshUser := ""
	if len(c.nodes) > 0 {
		sshUser = c.nodes[0].SSHUser
	}
	info := &pickle.Object{Module: "sky.provision.common", Name: "ClusterInfo", Args: []any{}, State: dict(
		"instances", instances,
		"head_instance_id", headID,
		"provider_name", c.cloud,
		"provider_config", dict("region", c.region, "use_internal_ips", false),
		"docker_user", nil,
		"ssh_user", optStr(sshUser),
		"custom_ray_options", nil,
	)}
	var accs any
	if c.accelerators != "" {
		name, count := splitAcc(c.accelerators)
		accs = dict(name, count)
	}
	var portsRes any
	if len(c.ports) > 0 {
		l := pickle.List{}
		for _, p := range c.ports {
			l = append(l, p)
		}
		portsRes = &l
	}
	res := &pickle.Object{Module: "sky.resources", Name: "Resources", Args: []any{}, State: dict(
		"_version", int64(27),
		"_cloud", &pickle.Object{Module: cloud.Module, Name: cloud.Name, Args: []any{}},
		"_region", c.region,
		"_zone", optStr(c.zone),
		"_instance_type", c.instanceType,
		"_use_spot_specified", c.useSpot,
		"_use_spot", c.useSpot,
		"_job_recovery", nil,
		"_disk_size", int64(c.diskSize),
		"_image_id", optStr(c.imageID),
		"_is_image_managed", nil,
		"_disk_tier", &pickle.Object{Module: "sky.utils.resources_utils", Name: "DiskTier", Args: []any{"medium"}},
		"_network_tier", nil,
		"_ports", portsRes,
		"_labels", nil,
		"_docker_login_config", nil,
		"_docker_username_for_runpod", nil,
		"_requires_fuse", nil,
		"_cluster_config_overrides", nil,
		"_cpus", optStr(c.cpus),
		"_memory", optStr(c.memory),
		"_accelerators", accs,
		"_accelerator_args", nil,
		"_autostop_config", nil,
		"_priority", nil,
	)}
	return &pickle.Object{Module: "sky.backends.cloud_vm_ray_backend", Name: "CloudVmRayResourceHandle", Args: []any{}, State: dict(
		"_version", int64(12),
		"cluster_name", c.name,
		"cluster_name_on_cloud", onCloud,
		"_cluster_yaml", "~/.sky/generated/"+c.name+".yml",
		"stable_internal_external_ips", &ips,
		"stable_ssh_ports", &ports,
		"cached_cluster_info", info,
		"launched_nodes", int64(len(c.nodes)),
		"launched_resources", res,
		"docker_user", nil,
		"is_grpc_enabled", true,
		"skylet_ssh_tunnel", nil,
	)}
}

func splitAcc(s string) (string, any) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			var n int64
			if _, err := fmt.Sscan(s[i+1:], &n); err == nil {
				return s[:i], n
			}
			return s[:i], int64(1)
		}
	}
	return s, int64(1)
}
