package serve_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhq/rh/internal/serve"
)

// servedFamilies starts every service (on the simulators) and returns the rh_
// metric families its /metrics serves, with each family's text.
func servedFamilies(t *testing.T) (map[string]bool, string) {
	t.Helper()
	addr := freeAddr(t)
	startServe(t, serve.Options{DataDir: t.TempDir(), HTTPAddr: addr, Sim: true})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fams := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "rh_") {
			fams[f[2]] = true
		}
	}
	return fams, string(b)
}

var metricName = regexp.MustCompile(`rh_[a-z_]+`)

// TestMetricsAreDocumented: docs/architecture.md's Observability list names
// exactly the rh_ families a started serve serves, and the dashboard queries
// only those.
func TestMetricsAreDocumented(t *testing.T) {
	served, text := servedFamilies(t)
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "## Observability\n")
	if !ok {
		t.Fatal("docs/architecture.md has no Observability section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(rh_[a-z_]+)`").FindAllStringSubmatch(sec, -1) {
		documented[m[1]] = true
	}
	for f := range served {
		if !documented[f] {
			t.Errorf("/metrics serves %s, which docs/architecture.md's Observability section does not list", f)
		}
	}
	for f := range documented {
		if !served[f] {
			t.Errorf("docs/architecture.md lists %s, which /metrics does not serve", f)
		}
	}
	dash, err := os.ReadFile("../../deploy/compose/grafana/dashboards/rh.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricName.FindAllString(string(dash), -1) {
		base := m
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if s, ok := strings.CutSuffix(m, suf); ok && served[s] {
				base = s
			}
		}
		if !served[base] {
			t.Errorf("the dashboard queries %s, which /metrics does not serve", m)
		}
	}
	// Known label values exist at zero from the start.
	for _, want := range []string{
		`rh_dead_letters_total{consumer="skyworker",reason_class="exhausted",service="skyworker",stream="RH_EVENTS"} 0`,
		`rh_dead_letters_total{consumer="sshgateway",reason_class="max_deliveries",service="registry",stream="RH_EVENTS"} 0`,
		`rh_registry_requests_total{op="share",outcome="ok",service="registry"} 0`,
		`rh_registry_provision_duration_seconds_count{kind="sagemaker",outcome="failed",service="registry"} 0`,
		`rh_registry_oldest_cluster_age_seconds{phase="Provisioning",service="registry"} 0`,
		`rh_ssh_dial_failures_total{class="host_key_changed",service="sshgateway"} 0`,
		`rh_build_info{version=`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if slices.ContainsFunc(strings.Split(text, "\n"), func(l string) bool {
		return strings.HasPrefix(l, "rh_worker_events_total{") && !strings.Contains(l, `event_type="dev.rh.cluster.`) && !strings.Contains(l, `event_type="unknown"`)
	}) {
		t.Errorf("rh_worker_events_total has an event_type that is not an intent type or unknown")
	}
}
