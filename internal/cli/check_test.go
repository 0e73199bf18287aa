package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/internal/workertest"
	"github.com/rhq/rh/services/sagemakerworker"
	"github.com/rhq/rh/services/sagemakerworker/sm"
	"github.com/rhq/rh/services/skyworker"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

type checkItem struct {
	Area, Name, Detail, Fix string
	OK, Optional            bool
}

type checkOut struct {
	Ready  bool
	Checks []checkItem
}

func (c checkOut) item(area, name string) (checkItem, bool) {
	for _, it := range c.Checks {
		if it.Area == area && it.Name == name {
			return it, true
		}
	}
	return checkItem{}, false
}

// runCheck runs `rhcli check` with exactly env as its environment.
func runCheck(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := cli.Run(ctx, append([]string{"check"}, args...), cli.IO{Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// startSageMakerWorker runs a sagemakerworker on its own service user with
// an AWS environment of its own: region eu-west-3 and a default role given
// by name in its RH_SAGEMAKER_ROLE, none of which the CLI has.
func startSageMakerWorker(t *testing.T, ns *natstest.Server, sim *sagemakersim.Server) {
	t.Helper()
	url := workertest.Serve(t, sim)
	workerEnv := map[string]string{sm.EnvRole: "rh-worker-role"}
	client := sm.NewClient(aws.Config{Region: "eu-west-3", Credentials: credentials.NewStaticCredentialsProvider("AKIDWORKER", "secret", "")},
		sm.Options{SageMakerEndpoint: url, STSEndpoint: url, IAMEndpoint: url, SageMakerConfigPaths: []string{},
			Getenv: func(k string) string { return workerEnv[k] }})
	w, err := sagemakerworker.Start(context.Background(), ns.ServiceConn(t, auth.SvcSageMakerWorker),
		sagemakerworker.Config{Client: client, ServiceConfig: worker.ServiceConfig{Auth: ns.Authenticator(), Worker: workertest.FastLoop}})
	if err != nil {
		t.Fatal(err)
	}
	workertest.StopAtCleanup(t, w.Stop)
}

// TestCheckReportsWhatTheWorkersSee: `rhcli check`, run by a viewer with no
// AWS or SkyPilot settings at all, reports the workers' view — the
// sagemakerworker's region, credentials' source and role (verified with IAM),
// the skyworker's API server and why each of its clouds is off — and
// checks SSH on this machine.
func TestCheckReportsWhatTheWorkersSee(t *testing.T) {
	ns := natstest.StartSecure(t)
	startSageMakerWorker(t, ns, sagemakersim.New(sagemakersim.Options{Region: "eu-west-3", Roles: []string{"rh-worker-role"}}))
	sky := skysim.New(skysim.Options{EnabledClouds: []string{"AWS", "Kubernetes"},
		DisabledReasons: map[string]string{"GCP": "GCP credentials expired: run gcloud auth application-default login"}})
	skyURL := workertest.Serve(t, sky)
	skyClient, err := skypilot.New(skypilot.Config{Endpoint: skyURL, RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := skyworker.Start(context.Background(), ns.ServiceConn(t, auth.SvcSkyWorker),
		skyworker.Config{SkyPilot: skyClient, ServiceConfig: worker.ServiceConfig{Auth: ns.Authenticator(), Worker: workertest.FastLoop}})
	if err != nil {
		t.Fatal(err)
	}
	workertest.StopAtCleanup(t, sw.Stop)

	home := t.TempDir()
	_ = os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	_ = os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), []byte("x"), 0o600)
	viewer := ns.AddUser(t, "vera", rh.RoleViewer)
	env := map[string]string{"RH_NATS_URL": ns.URL, "RH_NATS_CREDS": viewer, "HOME": home}

	code, out, stderr := runCheck(t, env, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	var rep checkOut
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, c := range rep.Checks {
		if !c.OK && !c.Optional && c.Fix == "" {
			t.Errorf("%s/%s is not ready and names no fix", c.Area, c.Name)
		}
	}
	want := []struct{ area, name, detail string }{
		{"sagemaker", "worker", "answered by sagemakerworker"},
		{"sagemaker", "region", "eu-west-3"},
		{"sagemaker", "credentials", "StaticCredentials"},
		{"sagemaker", "role", "arn:aws:iam::123456789012:role/rh-worker-role (from RH_SAGEMAKER_ROLE; exists)"},
		{"skypilot", "api server", "SkyPilot 0.14.0 (API version 90"},
		{"skypilot", "clouds", "enabled: AWS, Kubernetes"},
		{"ssh", "agent or default keys", "id_ed25519"},
	}
	for _, w := range want {
		it, ok := rep.item(w.area, w.name)
		if !ok || !it.OK || !strings.Contains(it.Detail, w.detail) {
			t.Errorf("%s/%s = %+v, want ok with %q", w.area, w.name, it, w.detail)
		}
	}
	if it, _ := rep.item("skypilot", "cloud GCP"); it.OK || !it.Optional || !strings.Contains(it.Detail, "GCP credentials expired") {
		t.Errorf("GCP: %+v", it)
	}
	if it, _ := rep.item("skypilot", "cloud Azure"); !strings.Contains(it.Detail, "az login") {
		t.Errorf("Azure: %+v", it)
	}
	if !rep.Ready {
		t.Errorf("not ready: %s", out)
	}
	if code, out, _ := runCheck(t, env, "sagemaker"); code != 0 || !strings.Contains(out, "eu-west-3") || strings.Contains(out, "skypilot") {
		t.Errorf("check sagemaker: exit %d\n%s", code, out)
	}
	if code, out, _ := runCheck(t, env, "skypilot"); code != 0 || !strings.Contains(out, "GCP credentials expired") || !strings.Contains(out, "off") {
		t.Errorf("check skypilot: exit %d\n%s", code, out)
	}
	if code, _, stderr := runCheck(t, env, "nimbus"); code != cli.ExitInvalid || !strings.Contains(stderr, "KIND") {
		t.Errorf("check nimbus: exit %d %q", code, stderr)
	}
}

// TestCheckKindNotReadyExitsNonZero: `check sagemaker` fails when the
// worker's role does not exist, and `check ondemand` when no skyworker runs
// (a clear result, not a hang).
func TestCheckKindNotReadyExitsNonZero(t *testing.T) {
	ns := natstest.StartSecure(t)
	startSageMakerWorker(t, ns, sagemakersim.New(sagemakersim.Options{Roles: []string{"someone-else"}}))
	env := map[string]string{"RH_NATS_URL": ns.URL, "RH_NATS_CREDS": ns.Material.OperatorCreds, "HOME": t.TempDir()}

	code, out, stderr := runCheck(t, env, "sagemaker")
	if code != cli.ExitError || !strings.Contains(out, "does not exist") || !strings.Contains(out, "NOT READY") || !strings.Contains(stderr, "sagemaker is not ready") {
		t.Errorf("check sagemaker with a missing role: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = runCheck(t, env, "ondemand")
	if code != cli.ExitError || !strings.Contains(out, "no ondemand worker running") || !strings.Contains(out, "rhcli serve") {
		t.Errorf("check ondemand with no skyworker: exit %d\n%s", code, out)
	}
	// check alone still exits 0: one kind not ready is normal.
	if code, _, _ := runCheck(t, env); code != 0 {
		t.Errorf("check: exit %d", code)
	}
}

// TestCheckSaysHowToStartRh: with no rh to ask, the cloud kinds say how to
// reach one, and SSH is still checked here.
func TestCheckSaysHowToStartRh(t *testing.T) {
	code, out, _ := runCheck(t, map[string]string{"RH_NATS_URL": "nats://127.0.0.1:1", "HOME": t.TempDir()})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"NOT READY", "cannot reach rh", "rhcli serve", "ssh-keygen"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
