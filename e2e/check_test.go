package e2e

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhq/rh/internal/sagemakersim"
)

// TestCheckAsksTheWorkerWhereItRuns: a sagemakerworker process runs on its
// own service user with an AWS environment (region, credentials, default
// role, endpoint) that rhcli does not have; `rhcli check sagemaker` reports
// that worker's view, its role verified with IAM, and fails once the
// worker's role does not exist.
func TestCheckAsksTheWorkerWhereItRuns(t *testing.T) {
	ns := startSecureNATS(t)
	sim := sagemakersim.New(sagemakersim.Options{Region: "eu-west-3", Roles: []string{"rh-e2e-role"}})
	aws := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); aws.Close() })
	none := filepath.Join(t.TempDir(), "none") // no AWS config files at all
	workerEnv := func(role string) []string {
		return []string{"AWS_REGION=eu-west-3", "AWS_ACCESS_KEY_ID=AKIDE2EWORKER", "AWS_SECRET_ACCESS_KEY=e2e-secret",
			"AWS_ENDPOINT_URL=" + aws.URL, "AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none,
			"AWS_EC2_METADATA_DISABLED=true", "RH_SAGEMAKER_ROLE=" + role}
	}
	w := startServiceEnv(t, ns.URL, "sagemakerworker", workerEnv("rh-e2e-role"), ns.serviceArgs("sagemakerworker")...)

	code, out, stderr := rhcli(t, ns.URL, "check", "sagemaker", "-o", "json")
	if code != 0 {
		t.Fatalf("check sagemaker: exit %d\n%s\n%s\nworker log:\n%s", code, out, stderr, w.Log.String())
	}
	var rep struct {
		Ready  bool
		Checks []struct {
			Area, Name, Detail string
			OK                 bool
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.Name] = c.Detail
	}
	for name, want := range map[string]string{
		"region":      "eu-west-3",
		"credentials": "the environment",
		"role":        "arn:aws:iam::123456789012:role/rh-e2e-role (from RH_SAGEMAKER_ROLE; exists)",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	w.Stop(t)

	w = startServiceEnv(t, ns.URL, "sagemakerworker", workerEnv("no-such-role"), ns.serviceArgs("sagemakerworker")...)
	defer w.Stop(t)
	code, out, _ = rhcli(t, ns.URL, "check", "sagemaker")
	if code != 1 || !strings.Contains(out, "does not exist") {
		t.Fatalf("check sagemaker with a missing role: exit %d\n%s", code, out)
	}
}
