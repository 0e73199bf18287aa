package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/internal/cli"
	"github.com/rhq/rh/internal/skysim"
)

type checkItem struct {
	Area, Name, Detail, Fix string
	OK                      bool
}

func runCheck(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	// The SageMaker check reads the AWS environment the SDK's way: keep it
	// off this machine's files and instance metadata.
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Run(ctx, append([]string{"check"}, args...), cli.IO{Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }})
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return code, out.String()
}

func TestCheckReportsEachItemWithItsFix(t *testing.T) {
	sim := skysim.New(skysim.Options{EnabledClouds: []string{"AWS", "Kubernetes"}})
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); ts.Close() })
	home := t.TempDir()
	_ = os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	_ = os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), []byte("x"), 0o600)

	code, out := runCheck(t, map[string]string{"SKYPILOT_API_SERVER_ENDPOINT": ts.URL, "HOME": home}, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var rep struct {
		Ready  bool
		Checks []checkItem
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]checkItem{}
	for _, c := range rep.Checks {
		got[c.Area+"/"+c.Name] = c
		if !c.OK && c.Fix == "" {
			t.Errorf("%s/%s is not ready and names no fix", c.Area, c.Name)
		}
	}
	if c := got["skypilot/api server"]; !c.OK || !strings.Contains(c.Detail, "0.14.0") {
		t.Errorf("api server: %+v", c)
	}
	if c := got["skypilot/clouds"]; !c.OK || !strings.Contains(c.Detail, "AWS, Kubernetes") || !strings.Contains(c.Detail, "not enabled: GCP") {
		t.Errorf("clouds: %+v", c)
	}
	if c := got["ssh/agent or default keys"]; !c.OK || !strings.Contains(c.Detail, "id_ed25519") {
		t.Errorf("ssh: %+v", c)
	}
	if c, ok := got["sagemaker/credentials"]; !ok || c.OK {
		t.Errorf("sagemaker credentials without any AWS config: %+v", c)
	}
	if rep.Ready {
		t.Error("ready with no AWS credentials")
	}
}

func TestCheckSaysHowToStartSkyPilot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	code, out := runCheck(t, map[string]string{"SKYPILOT_API_SERVER_ENDPOINT": "http://" + addr, "HOME": t.TempDir()})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"NOT READY", "sky api start", "SKYPILOT_API_SERVER_ENDPOINT", "ssh-keygen"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
