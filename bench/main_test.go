package bench

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestMain builds nothing unless benchmarks were asked for: the world is
// built by the first benchmark that runs (shared), so `go test ./...`
// starts no node. Whatever was built is torn down at the end, also on
// SIGINT/SIGTERM; then the comparison table is printed.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		progress("%v: cleaning up", s)
		teardown.run()
		os.Exit(2)
	}()
	code := m.Run()
	signal.Stop(sigs)
	teardown.run()
	printSummary(os.Stdout)
	os.Exit(code)
}

// result is the last measurement of one sub-benchmark (the testing package
// calls a benchmark with growing b.N; the last call is the one reported).
type result struct {
	nsPerOp float64
	n       int
	extra   map[string]float64
}

var (
	resultsMu sync.Mutex
	results   = map[string]result{}
)

// record reports the custom metrics and keeps the numbers for the summary.
func record(b *testing.B, extra map[string]float64) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns/1e6, "ms/op")
	for unit, v := range extra {
		b.ReportMetric(v, unit)
	}
	resultsMu.Lock()
	results[b.Name()] = result{nsPerOp: ns, n: b.N, extra: extra}
	resultsMu.Unlock()
}

// goal is one line of an issue's goals: rh's case against its baseline,
// which it must not exceed max times (strictly below when max is 1; max 0
// is a row for reference). Issue 6
// goals are checked with the agent and, for comparison, without it.
type goal struct {
	what, rh, base string
	max            float64
}

// judge says what the goal asks of ratio and whether it is met: max 1
// means strictly below, max 0 a row shown for reference only.
func (g goal) judge(ratio float64) (target, met string) {
	switch g.max {
	case 0:
		return "(reference)", "—"
	case 1:
		return "< 1×", yesNo(ratio < 1)
	}
	return fmt.Sprintf("≤ %.2f×", g.max), yesNo(ratio <= g.max)
}

// sessionGoals are issue 3's: the gateway with plain SSH sessions (no agent).
var sessionGoals = []goal{
	{"warm run (sessions) vs ControlMaster", "BenchmarkRunTrue/rhcli-sdk-noagent", "BenchmarkRunTrue/ssh-controlmaster", 1.3},
	{"warm run (sessions) vs fresh ssh", "BenchmarkRunTrue/rhcli-sdk-noagent", "BenchmarkRunTrue/ssh-fresh", 1.0 / 3},
	{"fan-out 8 (sessions) vs pdsh", "BenchmarkFanOut8/rhcli-sdk-noagent", "BenchmarkFanOut8/pdsh", 1},
	{"put 1 GiB (sessions) vs rsync", "BenchmarkPut1GB/rhcli-noagent", "BenchmarkPut1GB/rsync", 1.25},
	{"put 5,000 files (sessions) vs rsync", "BenchmarkPutTree5000/rhcli-noagent", "BenchmarkPutTree5000/rsync", 0},
}

var goals = []goal{
	// Issue 13 tightened issue 6's 0.25× for the CLI: a user's rhcli process,
	// start-up included, within a tenth of ControlMaster ssh on the same
	// node. The issue measured it on nodes logging in with a real rc file
	// (root's, starting pyenv): the login node. Against the plain user's
	// rc-less /bin/sh no client process can meet it (the SDK alone, on an
	// open connection, takes about 0.2×), so that row is for reference.
	{"warm run, CLI, node with your login", "BenchmarkRunTrue/rhcli-cli-login", "BenchmarkRunTrue/ssh-controlmaster-login", 0.1},
	{"warm run, CLI, node with no rc file", "BenchmarkRunTrue/rhcli-cli", "BenchmarkRunTrue/ssh-controlmaster", 0},
	{"warm run, SDK", "BenchmarkRunTrue/rhcli-sdk", "BenchmarkRunTrue/ssh-controlmaster", 0.25},
	{"fan-out 8, CLI", "BenchmarkFanOut8/rhcli-cli", "BenchmarkFanOut8/pdsh", 0.25},
	{"fan-out 8, SDK", "BenchmarkFanOut8/rhcli-sdk", "BenchmarkFanOut8/pdsh", 0.25},
	{"re-sync 5,000 unchanged files", "BenchmarkResyncTree5000/rhcli", "BenchmarkResyncTree5000/rsync", 1},
	{"re-sync 1 GiB, 1 MiB changed", "BenchmarkResync1GBChanged1MB/rhcli", "BenchmarkResync1GBChanged1MB/rsync", 1},
	// Issue 11: small files go in batches (filesync.Batcher).
	{"first put of 5,000 small files", "BenchmarkPutTree5000/rhcli", "BenchmarkPutTree5000/rsync", 1},
}

// printSummary prints every measurement and the goals of issue 6 as
// Markdown tables.
func printSummary(w io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	switch {
	case world == nil:
		fmt.Fprint(w, "\nrh benchmarks\n\n") // none needed the nodes
	case world.agent:
		fmt.Fprint(w, "\nrh vs OpenSSH tools, gateway: node agent; *-noagent: plain SSH sessions\n\n")
	default:
		fmt.Fprint(w, "\nrh vs OpenSSH tools, gateway: plain SSH sessions (the gateway has no node agent yet)\n\n")
	}
	fmt.Fprintln(w, "| case | ms/op | runs | other |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	names := make([]string, 0, len(results))
	for name := range results {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := results[name]
		var other []string
		for unit, v := range r.extra {
			other = append(other, fmt.Sprintf("%.0f %s", v, unit))
		}
		sort.Strings(other)
		fmt.Fprintf(w, "| %s | %.1f | %d | %s |\n", name, r.nsPerOp/1e6, r.n, strings.Join(other, ", "))
	}

	var rows strings.Builder
	for _, g := range sessionGoals {
		r, ok1 := results[g.rh]
		base, ok2 := results[g.base]
		if !ok1 || !ok2 {
			continue
		}
		ratio := r.nsPerOp / base.nsPerOp
		target, met := g.judge(ratio)
		fmt.Fprintf(&rows, "| %s | %.1f ms | %.1f ms | %.2f× | %s | %s |\n", g.what, r.nsPerOp/1e6, base.nsPerOp/1e6, ratio, target, met)
	}
	for _, g := range goals {
		for _, v := range []struct{ suffix, label string }{{"", ""}, {"-noagent", " (no agent)"}} {
			r, ok1 := results[g.rh+v.suffix]
			base, ok2 := results[g.base]
			if !ok1 || !ok2 {
				continue
			}
			ratio := r.nsPerOp / base.nsPerOp
			target, met := g.judge(ratio)
			fmt.Fprintf(&rows, "| %s%s | %.1f ms | %.1f ms | %.2f× | %s | %s |\n",
				g.what, v.label, r.nsPerOp/1e6, base.nsPerOp/1e6, ratio, target, met)
		}
	}
	if rows.Len() > 0 {
		fmt.Fprintln(w, "\n| goal | rh | baseline | ratio | target | met |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
		fmt.Fprint(w, rows.String())
	}
	printScaleGoals(w)
}

// printScaleGoals prints issue 10's goals: rh against pdsh at every size,
// and absolute bounds for the largest sizes.
func printScaleGoals(w io.Writer) {
	var lines []string
	for _, size := range scaleNodes {
		base, ok := results[fmt.Sprintf("BenchmarkScaleRunAll/nodes-%d/pdsh", size)]
		if !ok {
			continue
		}
		for _, via := range []string{"cli", "sdk"} {
			r, ok := results[fmt.Sprintf("BenchmarkScaleRunAll/nodes-%d/rhcli-%s", size, via)]
			if !ok {
				continue
			}
			ratio := r.nsPerOp / base.nsPerOp
			lines = append(lines, fmt.Sprintf("| run --node all, %d nodes, %s | %.1f ms | %.1f ms (pdsh -f %d) | %.2f× | ≤ 0.10× | %s |",
				size, strings.ToUpper(via), r.nsPerOp/1e6, base.nsPerOp/1e6, pdshFanout, ratio, yesNo(ratio <= 0.1)))
		}
	}
	largest := scaleNodes[len(scaleNodes)-1]
	if r, ok := results[fmt.Sprintf("BenchmarkScaleRunAll/nodes-%d/rhcli-cli", largest)]; ok {
		lines = append(lines, fmt.Sprintf("| run --node all, %d nodes, CLI | %.1f ms | | | < 1500 ms | %s |", largest, r.nsPerOp/1e6, yesNo(r.nsPerOp < 1.5e9)))
	}
	for _, n := range scaleClusters {
		if r, ok := results[fmt.Sprintf("BenchmarkScaleCreateToUp/clusters-%d", n)]; ok {
			goal, met := "", ""
			if n == scaleClusters[len(scaleClusters)-1] {
				goal, met = "< 50 ms/cluster", yesNo(r.extra["ms/cluster"] < 50)
			}
			lines = append(lines, fmt.Sprintf("| create→Up, %d at once | %.1f ms/cluster (%.0f ms in all) | | | %s | %s |",
				n, r.extra["ms/cluster"], r.nsPerOp/1e6, goal, met))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nScale (issue 10):")
	fmt.Fprintln(w, "\n| goal | rh | baseline | ratio | target | met |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
