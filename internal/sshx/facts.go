package sshx

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Facts describe a node's hardware and OS.
type Facts struct {
	OS          string // uname -s, lower case: "linux", "darwin"
	Distro      string // PRETTY_NAME from /etc/os-release, if any
	Kernel      string // uname -r
	Arch        string // uname -m
	CPUs        int    // online CPUs
	MemoryBytes uint64
	GPUs        []GPU
}

// GPU is one NVIDIA GPU as nvidia-smi reports it.
type GPU struct {
	Name        string
	MemoryBytes uint64
}

// factsScript gathers everything in one session; each line is key=value.
const factsScript = `os=$(uname -s 2>/dev/null); echo "os=$os"
echo "kernel=$(uname -r 2>/dev/null)"
echo "arch=$(uname -m 2>/dev/null)"
if [ -r /etc/os-release ]; then echo "distro=$(. /etc/os-release; echo "$PRETTY_NAME")"; fi
echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null)"
if [ -r /proc/meminfo ]; then echo "memkb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB.*/\1/p' /proc/meminfo)"
else echo "membytes=$(sysctl -n hw.memsize 2>/dev/null)"; fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null | sed 's/^/gpu=/'
fi
`

// GetFacts collects Facts in one round trip.
func GetFacts(ctx context.Context, c *Client) (Facts, error) {
	var out, errOut bytes.Buffer
	code, err := Run(ctx, c, RunRequest{Command: factsScript, Stdout: &out, Stderr: &errOut})
	if err != nil {
		return Facts{}, err
	}
	if code != 0 {
		return Facts{}, &Error{Op: "collect facts on", Target: c.target,
			Detail: fmt.Sprintf("script exited with %d: %s", code, strings.TrimSpace(errOut.String()))}
	}
	return parseFacts(out.String())
}

func parseFacts(s string) (Facts, error) {
	var f Facts
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "os":
			f.OS = strings.ToLower(v)
		case "kernel":
			f.Kernel = v
		case "arch":
			f.Arch = v
		case "distro":
			f.Distro = v
		case "cpus":
			f.CPUs, _ = strconv.Atoi(v)
		case "memkb":
			kb, _ := strconv.ParseUint(v, 10, 64)
			f.MemoryBytes = kb * 1024
		case "membytes":
			f.MemoryBytes, _ = strconv.ParseUint(v, 10, 64)
		case "gpu":
			// "NVIDIA A100-SXM4-80GB, 81920" (MiB). Names have no commas.
			i := strings.LastIndex(v, ",")
			if i < 0 {
				continue
			}
			mib, err := strconv.ParseUint(strings.TrimSpace(v[i+1:]), 10, 64)
			if err != nil {
				mib = 0 // "[N/A]" on some boards
			}
			f.GPUs = append(f.GPUs, GPU{Name: strings.TrimSpace(v[:i]), MemoryBytes: mib << 20})
		}
	}
	if f.OS == "" {
		return f, fmt.Errorf("sshx: facts: unexpected output %q", s)
	}
	return f, nil
}
