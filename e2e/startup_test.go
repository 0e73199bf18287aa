package e2e

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// initAllocBudget bounds the heap allocations of rhcli's package
// initialisation, which every command pays before it does anything. It is
// ~10.7k today (the embedded NATS server, the Prometheus client and the AWS
// credential chain are most of it); linking the SageMaker SDK's service
// package alone would add ~26k. Allocations, unlike milliseconds, are the
// same on a busy machine and a quiet one.
const initAllocBudget = 12_000

// Issue 13: the client's start-up path stays light. A package whose
// initialisation builds large tables or compiles many expressions, linked
// into the one binary, fails this test with the packages that allocate most.
func TestRhcliStartUpStaysWithinItsAllocationBudget(t *testing.T) {
	cmd := exec.Command(bin.Path, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rhcli version: %v\n%s", err, out)
	}
	type pkgInit struct {
		pkg    string
		allocs int
	}
	var inits []pkgInit
	total := 0
	for line := range strings.Lines(string(out)) {
		// init PKG @T ms, C ms clock, B bytes, N allocs
		f := strings.Fields(line)
		if len(f) != 11 || f[0] != "init" || f[10] != "allocs" {
			continue
		}
		n, err := strconv.Atoi(f[9])
		if err != nil {
			t.Fatalf("unexpected inittrace line %q", line)
		}
		inits = append(inits, pkgInit{f[1], n})
		total += n
	}
	if len(inits) < 50 {
		t.Fatalf("GODEBUG=inittrace=1 traced %d packages, want rhcli's hundreds:\n%s", len(inits), out)
	}
	if total > initAllocBudget {
		slices.SortFunc(inits, func(a, b pkgInit) int { return cmp.Compare(b.allocs, a.allocs) })
		var top strings.Builder
		for _, p := range inits[:min(10, len(inits))] {
			fmt.Fprintf(&top, "\n  %6d %s", p.allocs, p.pkg)
		}
		t.Fatalf("rhcli's package initialisation allocates %d times, over its budget of %d; most:%s", total, initAllocBudget, top.String())
	}
	t.Logf("package initialisation: %d packages, %d allocations (budget %d)", len(inits), total, initAllocBudget)
}
