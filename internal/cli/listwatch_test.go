package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/testkit"
)

func TestClusterListWatchPrintsTheTableThenEachChangeUntilCancelled(t *testing.T) {
	e := startRegistry(t)
	if code, _, stderr := e.rhcli(t, "cluster", "create", "first", "--ips", "10.1.1.1"); code != 0 {
		t.Fatal(stderr)
	}
	var out testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() {
		done <- cli.Run(ctx, []string{"cluster", "list", "--watch", "--kind", "byo"}, cli.IO{Out: &out, Err: io.Discard, Getenv: func(k string) string { return e.env[k] }})
	}()
	waitOutput(t, &out, "first")
	if !strings.HasPrefix(out.String(), "NAME") {
		t.Fatalf("list --watch does not start with the table:\n%s", out.String())
	}
	if code, _, stderr := e.rhcli(t, "cluster", "create", "second", "--ips", "10.1.1.2"); code != 0 {
		t.Fatal(stderr)
	}
	waitOutput(t, &out, "second")
	// Filtered out: another kind never shows.
	if code, _, stderr := e.rhcli(t, "cluster", "create", "cloudy", "--kind", "ondemand", "--instance-type", "m5.xlarge"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := e.rhcli(t, "cluster", "delete", "first", "--force"); code != 0 {
		t.Fatal(stderr)
	}
	waitOutput(t, &out, "removed")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if strings.Contains(out.String(), "cloudy") {
		t.Errorf("--kind byo showed an ondemand cluster:\n%s", out.String())
	}
	last := lines[len(lines)-1]
	if f := strings.Fields(last); len(f) != 3 || f[1] != "first" || f[2] != "removed" {
		t.Errorf("last line %q, want TIME first removed", last)
	}
	var second string
	for _, l := range lines {
		if strings.Contains(l, "second") {
			second = l
		}
	}
	if f := strings.Fields(second); len(f) < 6 || f[2] != "byo" || f[4] != string(rh.PhasePending) {
		t.Errorf("change line %q, want TIME second byo OWNER Pending ...", second)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("list --watch exited %d after Ctrl-C", code)
	}
}

func TestClusterListWatchJSONIsOneObjectPerLine(t *testing.T) {
	e := startRegistry(t)
	var out testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() {
		done <- cli.Run(ctx, []string{"cluster", "list", "-w", "-o", "json"}, cli.IO{Out: &out, Err: io.Discard, Getenv: func(k string) string { return e.env[k] }})
	}()
	waitOutput(t, &out, "[]")
	if code, _, stderr := e.rhcli(t, "cluster", "create", "j", "--ips", "10.1.1.3"); code != 0 {
		t.Fatal(stderr)
	}
	waitOutput(t, &out, `"change":"changed"`)
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var ch struct {
		Change  string            `json:"change"`
		Name    string            `json:"name"`
		Cluster rh.ClusterSummary `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ch); err != nil || ch.Name != "j" || ch.Cluster.Kind != rh.KindBYO {
		t.Fatalf("last line %q: %+v %v", lines[len(lines)-1], ch, err)
	}
}
