package agent

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rhq/rh/internal/sshx"
	"golang.org/x/sys/unix"
)

// Facts collects the node's OS and hardware, in the shape sshx.GetFacts
// returns, so the gateway can use either path.
func (c *Client) Facts(ctx context.Context) (sshx.Facts, error) {
	var f sshx.Facts
	err := c.call(ctx, opHeader{Op: "facts"}, &f)
	return f, err
}

// Status is the agent's live view of the node.
type Status struct {
	AgentVersion string        `json:"agent_version"`
	Protocol     int           `json:"protocol"`
	PID          int           `json:"pid"`
	Uptime       time.Duration `json:"uptime"` // of the agent
	// CPUPercent is the busy share of all CPUs (0..100) since the previous
	// Status call, or over a short sample for the first one.
	CPUPercent     float64    `json:"cpu_percent"`
	MemoryTotal    uint64     `json:"memory_total"`
	MemoryAvail    uint64     `json:"memory_available"`
	Disks          []DiskUse  `json:"disks"`
	GPUs           []GPUUse   `json:"gpus,omitempty"`
	Runs           []RunInfo  `json:"runs"`
	SampledAt      time.Time  `json:"sampled_at"`
	LoadAverage    [3]float64 `json:"load_average"`
	NumGoroutine   int        `json:"num_goroutine"`
	OpenStreams    int        `json:"open_streams"`
	AgentHeapBytes uint64     `json:"agent_heap_bytes"`
}

// DiskUse is the usage of the file system holding Path.
type DiskUse struct {
	Path  string `json:"path"`
	Total uint64 `json:"total"`
	Free  uint64 `json:"free"` // available to unprivileged users
	Used  uint64 `json:"used"`
}

// GPUUse is one NVIDIA GPU's live usage as nvidia-smi reports it.
type GPUUse struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	UtilPercent int    `json:"util_percent"`
	MemoryUsed  uint64 `json:"memory_used"`
	MemoryTotal uint64 `json:"memory_total"`
}

// Status reports the agent's version, uptime and the node's live usage.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.call(ctx, opHeader{Op: "status"}, &st)
	return st, err
}

func (srv *server) facts(s *stream, payload []byte) (any, error) {
	var f sshx.Facts
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		f.OS = strings.ToLower(unix.ByteSliceToString(u.Sysname[:]))
		f.Kernel = unix.ByteSliceToString(u.Release[:])
		f.Arch = unix.ByteSliceToString(u.Machine[:])
	} else {
		f.OS = runtime.GOOS
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		f.Distro = osRelease(b)
	}
	f.CPUs = onlineCPUs()
	f.MemoryBytes, _ = meminfo()
	for _, g := range nvidiaSMI(s.ctx, "name,memory.total") {
		if len(g) < 2 {
			continue
		}
		mib, _ := strconv.ParseUint(g[1], 10, 64) // "[N/A]" on some boards: 0
		f.GPUs = append(f.GPUs, sshx.GPU{Name: g[0], MemoryBytes: mib << 20})
	}
	return f, nil
}

func osRelease(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			if uq, err := strconv.Unquote(v); err == nil {
				return uq
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// onlineCPUs counts online CPUs as getconf _NPROCESSORS_ONLN does (not the
// affinity mask runtime.NumCPU reports).
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if found {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return runtime.NumCPU()
		}
		n += z - a + 1
	}
	return n
}

// meminfo returns MemTotal and MemAvailable in bytes.
func meminfo() (total, avail uint64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			total = kb << 10
		case "MemAvailable:":
			avail = kb << 10
		}
	}
	return total, avail
}

// nvidiaSMI queries fields per GPU; nil where there is no nvidia-smi.
func nvidiaSMI(ctx context.Context, fields string) [][]string {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--query-gpu="+fields, "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	var rows [][]string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		parts := strings.Split(line, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		rows = append(rows, parts)
	}
	return rows
}

// cpuSampler turns /proc/stat's cumulative counters into a usage share.
type cpuSampler struct {
	mu         sync.Mutex
	at         time.Time
	busy, idle uint64
}

func readCPUStat() (busy, idle uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		} else if i < 8 { // user nice system irq softirq steal; guest is in user already
			busy += v
		}
	}
	return busy, idle, true
}

// percent compares with the previous sample; with none (or one too recent
// to mean anything) it samples over 100 ms.
func (c *cpuSampler) percent(ctx context.Context) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	busy, idle, ok := readCPUStat()
	if !ok {
		return 0
	}
	if c.at.IsZero() || time.Since(c.at) < 50*time.Millisecond {
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0
		}
		c.busy, c.idle = busy, idle
		if busy, idle, ok = readCPUStat(); !ok {
			return 0
		}
	}
	db, di := busy-c.busy, idle-c.idle
	c.at, c.busy, c.idle = time.Now(), busy, idle
	if db+di == 0 {
		return 0
	}
	return 100 * float64(db) / float64(db+di)
}

func diskUse(p string) (DiskUse, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return DiskUse{}, false
	}
	bs := uint64(st.Bsize)
	d := DiskUse{Path: p, Total: st.Blocks * bs, Free: st.Bavail * bs}
	d.Used = (st.Blocks - st.Bfree) * bs
	return d, true
}

func (srv *server) status(s *stream, payload []byte) (any, error) {
	st := Status{AgentVersion: Version, Protocol: ProtocolVersion, PID: os.Getpid(),
		Uptime: time.Since(srv.started).Round(time.Millisecond), NumGoroutine: runtime.NumGoroutine()}
	st.CPUPercent = srv.cpu.percent(s.ctx)
	st.MemoryTotal, st.MemoryAvail = meminfo()
	paths := []string{"/"}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append([]string{home}, paths...)
	}
	for _, p := range paths {
		if d, ok := diskUse(p); ok {
			st.Disks = append(st.Disks, d)
		}
	}
	for _, g := range nvidiaSMI(s.ctx, "index,name,utilization.gpu,memory.used,memory.total") {
		if len(g) < 5 {
			continue
		}
		var u GPUUse
		u.Index, _ = strconv.Atoi(g[0])
		u.Name = g[1]
		u.UtilPercent, _ = strconv.Atoi(g[2])
		used, _ := strconv.ParseUint(g[3], 10, 64)
		tot, _ := strconv.ParseUint(g[4], 10, 64)
		u.MemoryUsed, u.MemoryTotal = used<<20, tot<<20
		st.GPUs = append(st.GPUs, u)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i := 0; i < 3 && i < len(f); i++ {
			st.LoadAverage[i], _ = strconv.ParseFloat(f[i], 64)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.AgentHeapBytes = ms.HeapAlloc
	srv.mu.Lock()
	st.Runs = make([]RunInfo, 0, len(srv.runs))
	for _, r := range srv.runs {
		st.Runs = append(st.Runs, r)
	}
	srv.mu.Unlock()
	slices.SortFunc(st.Runs, func(a, b RunInfo) int { return cmp.Compare(a.ID, b.ID) })
	srv.conn.mu.Lock()
	st.OpenStreams = len(srv.conn.streams)
	srv.conn.mu.Unlock()
	st.SampledAt = time.Now()
	return st, nil
}
