package skypilot

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/rhq/rh/internal/lazyre"
	"github.com/rhq/rh/internal/pickle"
)

// ClusterStatus is a cluster's state in SkyPilot.
type ClusterStatus string

const (
	ClusterInit         ClusterStatus = "INIT"
	ClusterUp           ClusterStatus = "UP"
	ClusterStopped      ClusterStatus = "STOPPED"
	ClusterAutostopping ClusterStatus = "AUTOSTOPPING"
	ClusterPending      ClusterStatus = "PENDING"
)

// ClusterRecord is one entry of /status. Null fields are left out by the
// server, so every field may be zero.
type ClusterRecord struct {
	Name         string        `json:"name"`
	Status       ClusterStatus `json:"status"`
	LaunchedAt   flexInt       `json:"launched_at"`
	LastUse      string        `json:"last_use"`
	Autostop     int           `json:"autostop"` // minutes; -1 off
	ToDown       bool          `json:"to_down"`
	ResourcesStr string        `json:"resources_str"`
	Cloud        string        `json:"cloud"`
	Region       string        `json:"region"`
	Zone         string        `json:"zone"`
	NumNodes     int           `json:"nodes"`
	CPUs         flexString    `json:"cpus"`
	Memory       flexString    `json:"memory"`
	Accelerators flexString    `json:"accelerators"` // a Python dict repr, e.g. "{'A100': 8}"
	ClusterHash  string        `json:"cluster_hash"`
	UserHash     string        `json:"user_hash"`
	UserName     string        `json:"user_name"`
	Workspace    string        `json:"workspace"`
	Credentials  *Credentials  `json:"credentials"`
	// RawHandle is the base64 pickle as sent; Handle its decoding (nil for
	// the pickled None "gAROLg==" sent with include_handle: false).
	RawHandle string  `json:"handle"`
	Handle    *Handle `json:"-"`
}

// Credentials are the SSH settings of a cluster. SSHPrivateKey is a path
// on the API server's machine: use SSHPrivateKeyContent.
type Credentials struct {
	SSHUser              string `json:"ssh_user"`
	SSHPrivateKey        string `json:"ssh_private_key"`
	SSHPrivateKeyContent string `json:"ssh_private_key_content"`
	SSHProxyCommand      string `json:"ssh_proxy_command"`
	SSHControlName       string `json:"ssh_control_name"`
	DockerUser           string `json:"docker_user"`
}

// NodeAddr is one node of a cluster, head first.
type NodeAddr struct {
	Internal string
	External string
	SSHPort  int
}

// Handle is what rh needs from a pickled CloudVmRayResourceHandle.
type Handle struct {
	ClusterName        string
	ClusterNameOnCloud string
	Version            int
	LaunchedNodes      int
	Nodes              []NodeAddr // head first, workers sorted by external IP
	SSHUser            string     // from cached_cluster_info; "" if unknown
	DockerUser         string
	Cloud              string // e.g. "AWS" (class name of launched_resources._cloud)
	Region             string
	InstanceType       string
}

// DecodeHandle decodes a base64 pickled CloudVmRayResourceHandle. An empty
// string or a pickled None gives (nil, nil).
func DecodeHandle(b64 string) (*Handle, error) {
	if b64 == "" {
		return nil, nil
	}
	v, err := pickle.LoadsBase64(b64)
	if err != nil {
		return nil, fmt.Errorf("decode handle: %w", err)
	}
	if v == nil {
		return nil, nil
	}
	o, ok := v.(*pickle.Object)
	if !ok {
		return nil, fmt.Errorf("decode handle: pickle holds a %T, not a handle object", v)
	}
	h := &Handle{}
	str := func(o *pickle.Object, name string) string {
		v, _ := o.Attr(name)
		s, _ := v.(string)
		return s
	}
	num := func(o *pickle.Object, name string) int {
		v, _ := o.Attr(name)
		n, _ := pickle.AsInt(v)
		return n
	}
	h.ClusterName = str(o, "cluster_name")
	h.ClusterNameOnCloud = str(o, "cluster_name_on_cloud")
	h.Version = num(o, "_version")
	h.LaunchedNodes = num(o, "launched_nodes")
	h.DockerUser = str(o, "docker_user")
	if h.ClusterName == "" {
		return nil, fmt.Errorf("decode handle: %s has no cluster_name", o.Class())
	}

	var ports []int
	if v, ok := o.Attr("stable_ssh_ports"); ok {
		items, _ := pickle.Items(v)
		for _, p := range items {
			n, _ := pickle.AsInt(p)
			ports = append(ports, n)
		}
	}
	if v, ok := o.Attr("stable_internal_external_ips"); ok && v != nil {
		pairs, _ := pickle.Items(v)
		for i, p := range pairs {
			tup, _ := pickle.Items(p)
			if len(tup) != 2 {
				return nil, fmt.Errorf("decode handle: stable_internal_external_ips[%d] is not a pair", i)
			}
			in, _ := tup[0].(string)
			ex, _ := tup[1].(string)
			h.Nodes = append(h.Nodes, NodeAddr{Internal: in, External: ex, SSHPort: portAt(ports, i)})
		}
	}
	if ci, ok := attrObj(o, "cached_cluster_info"); ok {
		h.SSHUser = str(ci, "ssh_user")
		if h.DockerUser == "" {
			h.DockerUser = str(ci, "docker_user")
		}
		if len(h.Nodes) == 0 {
			h.Nodes = nodesFromClusterInfo(ci)
		}
	}
	if res, ok := attrObj(o, "launched_resources"); ok {
		if cl, ok := attrObj(res, "_cloud"); ok {
			h.Cloud = cl.Name
		}
		h.Region = str(res, "_region")
		h.InstanceType = str(res, "_instance_type")
	}
	return h, nil
}

func attrObj(o *pickle.Object, name string) (*pickle.Object, bool) {
	v, _ := o.Attr(name)
	x, ok := v.(*pickle.Object)
	return x, ok
}

func portAt(ports []int, i int) int {
	if i < len(ports) && ports[i] > 0 {
		return ports[i]
	}
	return 22
}

// nodesFromClusterInfo serves handles whose IP cache is empty: head
// instance first, then the others in dict order (ClusterInfo.ip_tuples).
func nodesFromClusterInfo(ci *pickle.Object) []NodeAddr {
	instV, _ := ci.Attr("instances")
	inst, ok := instV.(*pickle.Dict)
	if !ok {
		return nil
	}
	headID, _ := ci.Attr("head_instance_id")
	var head, workers []NodeAddr
	inst.Range(func(k, v any) bool {
		infos, _ := pickle.Items(v)
		for i, it := range infos {
			io, ok := it.(*pickle.Object)
			if !ok {
				continue
			}
			in, _ := io.Attr("internal_ip")
			ex, _ := io.Attr("external_ip")
			port, _ := io.Attr("ssh_port")
			n := NodeAddr{SSHPort: 22}
			n.Internal, _ = in.(string)
			n.External, _ = ex.(string)
			if p, ok := pickle.AsInt(port); ok && p > 0 {
				n.SSHPort = p
			}
			if k == headID && i == 0 {
				head = append(head, n)
			} else {
				workers = append(workers, n)
			}
		}
		return true
	})
	return append(head, workers...)
}

// flexString accepts a JSON string or number (SkyPilot has sent both for
// cpus/memory across versions).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want string or number, got %s", b)
	}
	*f = flexString(n.String())
	return nil
}

// flexInt accepts an integer or a float (Unix times).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = 0
		return nil
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("want a number, got %s", b)
	}
	*f = flexInt(x)
	return nil
}

var clusterNameRE = lazyre.New(`^[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$`)

// ValidateClusterName applies SkyPilot's cluster name rule.
func ValidateClusterName(name string) error {
	if !clusterNameRE.MatchString(name) {
		return fmt.Errorf("skypilot: cluster name %q must match %s", name, clusterNameRE)
	}
	return nil
}
