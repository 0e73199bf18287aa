package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/yaml"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/proctest"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/testkit"
)

// The compose stack's monitoring, for real: Debian's Prometheus scrapes a
// real `rhcli serve --sim` with the compose scrape configuration and rules,
// the test drives creates of every kind, a failed create and malformed
// events, then evaluates every dashboard query and every alert expression
// through Prometheus' HTTP API and checks each against what the workload
// implies.
const (
	promDir       = "../deploy/compose/prometheus"
	dashboardFile = "../deploy/compose/grafana/dashboards/rh.json"
	// malformedEvents are published to a worker's subject; each must be
	// dead-lettered and counted exactly once.
	malformedEvents = 5
)

func TestPrometheusOverServe(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("Debian's prometheus package is a test prerequisite (scripts/install-test-deps.sh installs it): ", err)
	}
	dashboard := dashboardQueries(t)
	alerts := alertExprs(t)

	dataDir := t.TempDir()
	metricsAddr := testkit.FreeAddr(t)
	natsURL := startSimServeIn(t, dataDir, "--http-addr", metricsAddr)
	prom := startPrometheus(t, promBin, metricsAddr)

	// A first scrape lands before anything happens, so every series the
	// workload moves starts at zero in Prometheus: increase() then counts
	// each series' first increment (the dead-letter panel showed ~2
	// where 8 messages were dead-lettered because it did not).
	prom.waitAll(t, 60*time.Second, `up{job="rh"} == 1`, `count(rh_dead_letters_total) > 0`,
		`count(rh_registry_provision_duration_seconds_count) > 0`)
	if v := prom.scalar(t, `sum(rh_dead_letters_total) + sum(rh_registry_provision_duration_seconds_count)`); v != 0 {
		t.Fatalf("before the workload: dead letters + provisions = %v", v)
	}

	// The workload: one create per kind that reaches Up, a byo create whose
	// key the node refuses (Failed at once: authentication is a definite
	// answer), a command, and malformed events on the on-demand worker's subject.
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	node := sshnode.StartT(t, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	keyPath, wrongPath := filepath.Join(t.TempDir(), "id"), filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(keyPath, key.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrongPath, wrong.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	byo := func(k string) []string {
		return []string{"--ips", node.Addr(), "--ssh-port", strconv.Itoa(node.Port()), "--ssh-user", node.User(), "--ssh-key", k}
	}
	creates := []struct {
		name string
		args []string
		want rh.Phase
	}{
		{"byo-up", byo(keyPath), rh.PhaseUp},
		{"byo-failed", byo(wrongPath), rh.PhaseFailed},
		{"od-up", []string{"--instance-type", "A100:4", "--provider", "aws", "--region", "us-east-1"}, rh.PhaseUp},
		{"sm-up", []string{"--instance-type", "ml.m5.large", "--role", "E2ERole"}, rh.PhaseUp},
	}
	for _, c := range creates {
		if code, _, stderr := rhcli(t, natsURL, append([]string{"cluster", "create", c.name}, c.args...)...); code != 0 {
			t.Fatalf("create %s: exit %d: %s", c.name, code, stderr)
		}
	}
	publishMalformed(t, natsURL, filepath.Join(dataDir, "auth", "service-serve.creds"), malformedEvents)
	for _, c := range creates {
		var got rh.Cluster
		testkit.WaitErr(t, 90*time.Second, c.name+" to become "+string(c.want), func() error {
			got = getCluster(t, natsURL, c.name)
			if got.Status.Phase != c.want {
				return fmt.Errorf("%s: %s", got.Status.Phase, got.Status.Message)
			}
			return nil
		})
	}
	if res := runOn(t, natsURL, "byo-up", "--", "echo", "measured"); len(res) != 1 || res[0].Stdout != "measured\n" {
		t.Fatalf("run: %+v", res)
	}

	// Wait until a scrape shows the whole workload (the registry's gauges
	// follow its reconciles), then evaluate everything at that scrape's
	// time: the counters' samples there are final, and increase() over a
	// window that holds a series' first (zero) sample and ends on a sample
	// is exact, not extrapolated.
	prom.waitAll(t, 60*time.Second,
		fmt.Sprintf(`sum(rh_dead_letters_total) == %d`, malformedEvents),
		`count(rh_registry_provision_duration_seconds_count{outcome="up"} >= 1) == 3`,
		`sum(rh_registry_provision_duration_seconds_count{outcome="failed", kind="byo"}) == 1`,
		`sum(rh_registry_clusters{phase="Up"}) == 3`,
		`sum(rh_registry_clusters{phase="Failed", kind="byo"}) == 1`,
		`sum(rh_registry_oldest_cluster_age_seconds{phase!="Up"}) == 0`,
		`sum(rh_ssh_commands_total{outcome="ok"}) >= 1`,
	)
	at := prom.scalar(t, `max(timestamp(rh_build_info))`)

	// Dead letters counted exactly, by the counter's current value: all of
	// them the on-demand worker's, malformed.
	exact := `sum(rh_dead_letters_total{stream="RH_EVENTS", consumer="skyworker", reason_class="malformed"})`
	if v := prom.scalarAt(t, exact, at); v != malformedEvents {
		t.Errorf("%s = %v, want %d", exact, v, malformedEvents)
	}
	if v := prom.scalarAt(t, `sum(rh_dead_letters_total)`, at); v != malformedEvents {
		t.Errorf("dead letters of every source = %v, want %d", v, malformedEvents)
	}

	checked := map[string]bool{}
	for _, q := range dashboard {
		check, ok := dashboardChecks[q.key()]
		if !ok {
			t.Errorf("dashboard query %s has no expectation in this test; add one: %s", q.key(), q.Expr)
			continue
		}
		checked[q.key()] = true
		v := prom.query(t, q.Expr, at)
		t.Logf("dashboard %s: %v", q.key(), v)
		if err := check(v); err != nil {
			t.Errorf("dashboard %s: %s\n  = %v", q.key(), q.Expr, err)
		}
		// The legend names each series by labels the query returns.
		for _, m := range legendLabel.FindAllStringSubmatch(q.Legend, -1) {
			for _, s := range v {
				if s.labels[m[1]] == "" {
					t.Errorf("dashboard %s: legend %q names label %s, which %v lacks", q.key(), q.Legend, m[1], s)
					break
				}
			}
		}
	}
	for name, a := range alerts {
		check, ok := alertChecks[name]
		if !ok {
			t.Errorf("alert %s has no expectation in this test; add one: %s", name, a.Expr)
			continue
		}
		checked[name] = true
		v := prom.query(t, a.Expr, at)
		t.Logf("alert %s: %v", name, v)
		if err := check(v); err != nil {
			t.Errorf("alert %s: %s\n  = %v", name, a.Expr, err)
		}
		// Its annotations name labels the expression returns.
		for _, text := range a.Annotations {
			for _, m := range annotationLabel.FindAllStringSubmatch(text, -1) {
				for _, s := range v {
					if s.labels[m[1]] == "" {
						t.Errorf("alert %s: annotation %q names label %s, which %v lacks", name, text, m[1], s)
						break
					}
				}
			}
		}
	}
	for k := range dashboardChecks {
		if !checked[k] {
			t.Errorf("expectation for %s matches no dashboard query", k)
		}
	}
	for k := range alertChecks {
		if !checked[k] {
			t.Errorf("expectation for alert %s matches no rule", k)
		}
	}

	// Prometheus evaluates every rule without error, and the dead-letter
	// alert (no `for`) fires.
	testkit.WaitErr(t, 30*time.Second, "every rule evaluated without error", func() error {
		return prom.rulesHealthy(len(alerts))
	})
	testkit.WaitErr(t, 30*time.Second, "RHDeadLetters to fire", func() error {
		return prom.firing("RHDeadLetters")
	})
}

// publishMalformed publishes n bodies that are no rh event to the on-demand
// worker's create subject, as a services-account client can.
func publishMalformed(t *testing.T, natsURL, creds string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := natsutil.Connect(ctx, natsURL, "e2e-malformed", creds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj := events.IntentSubject(events.OpCreate, rh.KindOnDemand)
	for i := range n {
		if _, err := js.Publish(ctx, subj, fmt.Appendf(nil, "not an event %d {", i)); err != nil {
			t.Fatalf("publish to %s: %v", subj, err)
		}
	}
}

// ---- what the workload implies for each query ----

// sample is one series of an instant vector.
type sample struct {
	labels map[string]string
	value  float64
}

func (s sample) String() string { return fmt.Sprintf("%v=%v", s.labels, s.value) }

type vector []sample

// only returns the samples whose labels include every pair of kv.
func (v vector) only(kv ...string) vector {
	var out vector
next:
	for _, s := range v {
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// one returns the value of the single sample with labels kv.
func (v vector) one(kv ...string) (float64, error) {
	m := v.only(kv...)
	if len(m) != 1 {
		return 0, fmt.Errorf("%d series with %v in %v", len(m), kv, v)
	}
	return m[0].value, nil
}

type check func(vector) error

// empty: the expression parses and selects nothing.
func empty(v vector) error {
	if len(v) != 0 {
		return fmt.Errorf("want an empty vector, got %v", v)
	}
	return nil
}

// equal: the series with labels kv has value want.
func equal(want float64, kv ...string) check {
	return func(v vector) error {
		got, err := v.one(kv...)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%v: %v, want %v", kv, got, want)
		}
		return nil
	}
}

// positive: the series with labels kv is finite and above zero.
func positive(kv ...string) check {
	return func(v vector) error {
		got, err := v.one(kv...)
		if err != nil {
			return err
		}
		if math.IsNaN(got) || math.IsInf(got, 0) || got <= 0 {
			return fmt.Errorf("%v: %v, want a finite value above zero", kv, got)
		}
		return nil
	}
}

// restEqual: every series but those with the label pairs in except has value want.
func restEqual(want float64, except ...[]string) check {
	return func(v vector) error {
	next:
		for _, s := range v {
			for _, kv := range except {
				if len(vector{s}.only(kv...)) == 1 {
					continue next
				}
			}
			if s.value != want {
				return fmt.Errorf("%v: want %v", s, want)
			}
		}
		return nil
	}
}

func all(cs ...check) check {
	return func(v vector) error {
		for _, c := range cs {
			if err := c(v); err != nil {
				return err
			}
		}
		return nil
	}
}

// perKind: positive for each kind (each had a create that reached Up).
func perKind(kv ...string) check {
	var cs []check
	for _, k := range rh.Kinds {
		cs = append(cs, positive(append([]string{"kind", string(k)}, kv...)...))
	}
	return all(cs...)
}

func kv(pairs ...string) []string { return pairs }

// noExporter: the query is over the NATS exporter's metrics; there is no
// exporter here (its job is not scraped), so the query must parse and
// return an empty vector. The exporter's metric names are checked against
// its documentation by hand, not here.
var noExporter = empty

// dashboardChecks holds, for each dashboard query ("panel title/refId"), what
// the workload implies.
var dashboardChecks = map[string]check{
	// Three clusters Up, none waiting or stuck.
	"What is stuck: oldest cluster in each phase/A": all(positive("phase", "Up"), restEqual(0, kv("phase", "Up"))),
	"Clusters by phase and kind/A": all(
		equal(1, "phase", "Up", "kind", "byo"), equal(1, "phase", "Up", "kind", "ondemand"),
		equal(1, "phase", "Up", "kind", "sagemaker"), equal(1, "phase", "Failed", "kind", "byo"),
		restEqual(0, kv("phase", "Up"), kv("phase", "Failed", "kind", "byo"))),
	// Provisioning time present for every kind after one create.
	"Create to Up p50/p95 by kind/A": perKind(),
	"Create to Up p50/p95 by kind/B": perKind(),
	// The byo create with a refused key, and only it, failed.
	"Creates that failed, by kind (1h), and their time to Failed/A": all(equal(1, "kind", "byo"), equal(0, "kind", "ondemand"), equal(0, "kind", "sagemaker")),
	"Creates that failed, by kind (1h), and their time to Failed/B": positive("kind", "byo"),
	// Dead letters counted exactly: increase() over the window sees every one.
	"Dead letters (1h) by source and reason/A": all(
		equal(malformedEvents, "stream", "RH_EVENTS", "consumer", "skyworker", "reason_class", "malformed"),
		restEqual(0, kv("stream", "RH_EVENTS", "consumer", "skyworker", "reason_class", "malformed"))),
	"Worker events by outcome/A": all(
		positive("kind", "ondemand", "outcome", "dead_lettered"), positive("kind", "byo", "outcome", "failed"),
		positive("kind", "byo", "outcome", "acked"), positive("kind", "ondemand", "outcome", "acked"),
		positive("kind", "sagemaker", "outcome", "acked"),
		equal(0, "kind", "sagemaker", "outcome", "dead_lettered"), equal(0, "kind", "byo", "outcome", "dead_lettered")),
	"Handling time p95 and event lag p90 (workers' intents, the registry's state reports)/A": perKind(),
	"Handling time p95 and event lag p90 (workers' intents, the registry's state reports)/B": perKind(),
	// Every create's reports were applied: the registry's lag is measured.
	"Handling time p95 and event lag p90 (workers' intents, the registry's state reports)/C": positive(),
	// The simulators answered everything: no cloud errors, every series there at zero.
	"Cloud API errors/A":                    all(nonEmpty, restEqual(0)),
	"Cloud API errors/B":                    all(nonEmpty, restEqual(0)),
	"Registry requests by op and outcome/A": all(positive("op", "create", "outcome", "ok"), positive("op", "get", "outcome", "ok")),
	"State reports by outcome/A":            all(positive("outcome", "applied"), equal(0, "outcome", "dead_lettered")),
	"Are nodes reachable: SSH dial failures by class/A": all(positive("class", "auth_refused"), equal(0, "class", "conn_refused"),
		equal(0, "class", "host_key_changed")),
	"Are nodes reachable: SSH dial failures by class/B":                 positive(),
	"SSH dial time p50/p95/A":                                           positive(),
	"SSH dial time p50/p95/B":                                           positive(),
	"Commands run (gateway)/A":                                          all(positive("outcome", "ok"), equal(0, "outcome", "error")),
	"Command and transfer time p50/p95 by kind/A":                       positive("kind", "byo", "op", "run"),
	"Command and transfer time p50/p95 by kind/B":                       positive("kind", "byo", "op", "run"),
	"Bytes moved/A":                                                     positive("direction", "stdout"),
	"Is the bus keeping up: rh consumers' pending and unacknowledged/A": noExporter,
	"Is the bus keeping up: rh consumers' pending and unacknowledged/B": noExporter,
	"rh consumers' redelivered messages (now)/A":                        noExporter,
	// Only rh is scraped here (no exporter): one target, up.
	"Services up and version/A": all(equal(1, "job", "rh"), func(v vector) error {
		if len(v) != 1 {
			return fmt.Errorf("want rh's target only, got %v", v)
		}
		return nil
	}),
	"Services up and version/B": func(v vector) error {
		if len(v) != 1 || v[0].value != 1 || v[0].labels["version"] == "" {
			return fmt.Errorf("want one rh_build_info with a version, got %v", v)
		}
		return nil
	},
}

func nonEmpty(v vector) error {
	if len(v) == 0 {
		return fmt.Errorf("empty: the series should exist from the start")
	}
	return nil
}

// alertChecks holds, for each alert, what its expression returns after the
// workload: only the dead letters alert selects anything.
var alertChecks = map[string]check{
	"RHClusterStuck": empty,
	"RHDeadLetters": all(equal(malformedEvents, "stream", "RH_EVENTS", "consumer", "skyworker", "reason_class", "malformed"),
		func(v vector) error {
			if len(v) != 1 {
				return fmt.Errorf("want the on-demand worker's malformed dead letters only, got %v", v)
			}
			return nil
		}),
	// Every kind completed events; none retried without success.
	"RHWorkerRetryingWithoutSuccess": empty,
	"RHConsumerBacklogGrowing":       noExporter,
	"RHEventLagHigh":                 empty,
	"RHStateReportLagHigh":           empty,
	"RHServiceDown":                  empty,
	// One refused key is one failed dial, below the alert's five.
	"RHSSHDialFailuresRising": empty,
	"RHSSHHostKeyChanged":     empty,
}

// ---- the dashboard and the rules ----

type dashQuery struct {
	Panel, RefID, Expr, Legend string
}

// legendLabel matches a label reference in a legend: {{kind}}.
var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

func (q dashQuery) key() string { return q.Panel + "/" + q.RefID }

// dashboardQueries reads every target of every panel (rows included).
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			RefID  string `json:"refId"`
			Expr   string `json:"expr"`
			Legend string `json:"legendFormat"`
		} `json:"targets"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []dashQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				out = append(out, dashQuery{p.Title, tg.RefID, tg.Expr, tg.Legend})
			}
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

type alertRule struct {
	Expr        string            `json:"expr"`
	Annotations map[string]string `json:"annotations"`
}

// annotationLabel matches a label reference in an annotation: {{ $labels.kind }}.
var annotationLabel = regexp.MustCompile(`\$labels\.(\w+)`)

// alertExprs reads every alerting rule, by alert name.
func alertExprs(t *testing.T) map[string]alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(promDir, "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				alertRule
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]alertRule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r.alertRule
			}
		}
	}
	if len(out) == 0 || len(out["RHDeadLetters"].Annotations) == 0 {
		t.Fatalf("rules.yml read as %+v: no alerts, or no annotations", out)
	}
	return out
}

// ---- Prometheus ----

type prometheus struct {
	base string
}

// startPrometheus runs Debian's prometheus with the compose stack's
// configuration, changed only where this machine differs: the rh job
// scrapes the test's serve every second, rules are evaluated every second,
// and there is no NATS exporter or Alertmanager to reach.
func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(promDir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		t.Fatal("prometheus.yml has no global section")
	}
	global["scrape_interval"], global["scrape_timeout"], global["evaluation_interval"] = "1s", "1s", "1s"
	delete(cfg, "alerting")
	jobs, _ := cfg["scrape_configs"].([]any)
	var kept []any
	for _, j := range jobs {
		job, _ := j.(map[string]any)
		if job["job_name"] == "rh" {
			job["static_configs"] = []any{map[string]any{"targets": []any{target}}}
			kept = append(kept, job)
		}
	}
	if len(kept) != 1 {
		t.Fatalf("prometheus.yml has %d rh jobs, want 1", len(kept))
	}
	cfg["scrape_configs"] = kept
	rules, _ := cfg["rule_files"].([]any)
	if len(rules) == 0 {
		t.Fatal("prometheus.yml loads no rule files")
	}
	for _, r := range rules {
		name, _ := r.(string)
		src, err := os.ReadFile(filepath.Join(promDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		t.Fatal(err)
	}

	addr := testkit.FreeAddr(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus configuration:\n%s", out)
		}
	})
	cmd := exec.Command(bin, "--config.file", cfgPath, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	cmd.Dir = dir
	prom := proctest.Start(t, "prometheus", cmd, proctest.TermAtCleanup)
	p := &prometheus{base: "http://" + addr}
	testkit.WaitErr(t, 60*time.Second, "prometheus to be ready", func() error {
		if prom.Exited() {
			return fmt.Errorf("prometheus exited: %v", prom.Cmd.ProcessState)
		}
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// api calls a Prometheus API endpoint and decodes its data.
func (p *prometheus) api(path string, form url.Values, data any) error {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.base + path + "?" + form.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Data      json.RawMessage `json:"data"`
		Warnings  []string        `json:"warnings"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s: %v", path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", r.ErrorType, r.Error, resp.Status)
	}
	if len(r.Warnings) > 0 {
		return fmt.Errorf("warnings: %v", r.Warnings)
	}
	return json.Unmarshal(r.Data, data)
}

// tryQuery evaluates expr at time at (0: now) and returns its instant vector.
func (p *prometheus) tryQuery(expr string, at float64) (vector, error) {
	form := url.Values{"query": {expr}}
	if at != 0 {
		form.Set("time", strconv.FormatFloat(at, 'f', 3, 64))
	}
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", form, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", d.ResultType)
	}
	var v vector
	for _, r := range d.Result {
		s, _ := r.Value[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %v", r.Value, err)
		}
		v = append(v, sample{r.Metric, f})
	}
	sort.Slice(v, func(i, j int) bool { return fmt.Sprint(v[i].labels) < fmt.Sprint(v[j].labels) })
	return v, nil
}

// query evaluates expr at time at; a query Prometheus refuses fails the test.
func (p *prometheus) query(t *testing.T, expr string, at float64) vector {
	t.Helper()
	v, err := p.tryQuery(expr, at)
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return v
}

// scalarAt is the value of an expression that yields one series.
func (p *prometheus) scalarAt(t *testing.T, expr string, at float64) float64 {
	t.Helper()
	v := p.query(t, expr, at)
	if len(v) != 1 {
		t.Fatalf("%s: want one series, got %v", expr, v)
	}
	return v[0].value
}

func (p *prometheus) scalar(t *testing.T, expr string) float64 {
	t.Helper()
	return p.scalarAt(t, expr, 0)
}

// waitAll polls until each condition (an expression that selects something
// when it holds) holds at once.
func (p *prometheus) waitAll(t *testing.T, timeout time.Duration, conds ...string) {
	t.Helper()
	testkit.WaitErr(t, timeout, "Prometheus to see "+strings.Join(conds, ", "), func() error {
		for _, c := range conds {
			v, err := p.tryQuery(c, 0)
			if err != nil {
				return fmt.Errorf("%s: %v", c, err)
			}
			if len(v) == 0 {
				return fmt.Errorf("not yet: %s", c)
			}
		}
		return nil
	})
}

// rulesHealthy reports whether n alerting rules were loaded and each was
// evaluated without error.
func (p *prometheus) rulesHealthy(n int) error {
	var d struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("/api/v1/rules", url.Values{"type": {"alert"}}, &d); err != nil {
		return err
	}
	seen := 0
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			seen++
			if r.Health != "ok" {
				return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if seen != n {
		return fmt.Errorf("%d alerting rules loaded, want %d", seen, n)
	}
	return nil
}

// firing reports whether alert is firing.
func (p *prometheus) firing(alert string) error {
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", nil, &d); err != nil {
		return err
	}
	for _, a := range d.Alerts {
		if a.Labels["alertname"] == alert && a.State == "firing" {
			return nil
		}
	}
	return fmt.Errorf("alerts: %+v", d.Alerts)
}
