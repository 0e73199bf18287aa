package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
)

// buildCreateArgs parses args as `cluster create` would and builds the
// request, without NATS.
func buildCreateArgs(t *testing.T, env map[string]string, args ...string) (string, rh.Spec, *rh.Secrets, error) {
	t.Helper()
	a := &app{io: IO{Getenv: func(k string) string { return env[k] }}}
	var f createFlags
	cmd := &cobra.Command{Use: "create"}
	f.add(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return a.buildCreate(cmd, &f, cmd.Flags().Args())
}

// TestCreateFlagsFillTheirKindsSection pins what every flag of each kind
// puts in the spec (and the secrets), and how the kind is inferred. The
// spec comes back as validation left it, defaults filled in the section.
func TestCreateFlagsFillTheirKindsSection(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"USER": "tester", "HOME": dir, "PW": "s3cret"}
	keyPath := filepath.Join(dir, "id")
	const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	estPath := filepath.Join(dir, "est.yaml")
	yamlPath := filepath.Join(dir, "c.yaml")
	for p, b := range map[string]string{
		keyPath:  key,
		estPath:  "entry_point: train.py\n",
		yamlPath: "name: from-file\nbyo:\n  ips: [10.0.0.9]\n  ssh_user: fileuser\nssh_key: " + keyPath + "\npassword_env: PW\n",
	} {
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		args    []string
		want    rh.Spec
		secrets *rh.Secrets
	}{
		{
			name: "byo, every flag",
			args: []string{"c", "--ips", "10.0.0.1,10.0.0.2", "--ssh-user", "ml", "--ssh-port", "2222", "--proxy-command", "nc %h %p",
				"--insecure-ignore-host-key", "--use-agent"},
			want: rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"10.0.0.1", "10.0.0.2"}, SSHUser: "ml", SSHPort: 2222,
				ProxyCommand: "nc %h %p", InsecureIgnoreHostKey: true, UseAgent: true}},
		},
		{
			name:    "byo, jump host, key and password; user defaults to $USER",
			args:    []string{"c", "--ips", "10.0.0.1", "--jump-host", "j@bastion:2200", "--ssh-key", keyPath, "--password-env", "PW"},
			want:    rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"10.0.0.1"}, SSHUser: "tester", SSHPort: 22, JumpHost: "j@bastion:2200"}},
			secrets: &rh.Secrets{SSHPrivateKey: key, Password: "s3cret"},
		},
		{
			name: "ondemand, every flag",
			args: []string{"c", "--instance-type", "A100:4", "--num-instances", "2", "--provider", "aws", "--region", "us-east-1",
				"--use-spot", "--image-id", "img-1", "--memory", "32+", "--disk-size", "100", "--open-ports", "8080,8888", "--autostop-mins", "30"},
			want: rh.Spec{AutostopMins: new(30), OnDemand: &rh.OnDemandSpec{InstanceType: "A100:4", NumInstances: 2, Provider: "aws", Region: "us-east-1",
				UseSpot: true, ImageID: "img-1", Memory: "32+", DiskSize: 100, OpenPorts: []int{8080, 8888}}},
		},
		{
			name: "ondemand by --kind",
			args: []string{"c", "--kind", "ondemand", "--provider", "gcp"},
			want: rh.Spec{Kind: rh.KindOnDemand, OnDemand: &rh.OnDemandSpec{Provider: "gcp", InstanceType: "CPU:2+", NumInstances: 1}},
		},
		{
			name: "sagemaker, every flag",
			args: []string{"c", "--instance-type", "ml.m5.large", "--num-instances", "2", "--role", "arn:aws:iam::123456789012:role/rh",
				"--profile", "p", "--region", "us-west-2", "--image-uri", "img:1", "--connection-wait-time", "600", "--estimator", estPath, "--job-name", "j-1"},
			want: rh.Spec{SageMaker: &rh.SageMakerSpec{InstanceType: "ml.m5.large", NumInstances: 2, Role: "arn:aws:iam::123456789012:role/rh",
				Profile: "p", Region: "us-west-2", ImageURI: "img:1", ConnectionWaitTime: 600, Estimator: "entry_point: train.py\n", JobName: "j-1"}},
		},
		{
			name: "sagemaker by --kind",
			args: []string{"c", "--kind", "sagemaker", "--instance-type", "ml.g5.xlarge"},
			want: rh.Spec{Kind: rh.KindSageMaker, SageMaker: &rh.SageMakerSpec{InstanceType: "ml.g5.xlarge", NumInstances: 1}},
		},
		{
			name:    "file, with flags winning",
			args:    []string{"from-file", "-f", yamlPath, "--ssh-user", "flaguser"},
			want:    rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"10.0.0.9"}, SSHUser: "flaguser", SSHPort: 22}},
			secrets: &rh.Secrets{SSHPrivateKey: key, Password: "s3cret"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, spec, secrets, err := buildCreateArgs(t, env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			wantName := tc.args[0]
			if name != wantName {
				t.Errorf("name %q, want %q", name, wantName)
			}
			if !reflect.DeepEqual(spec, tc.want) {
				t.Errorf("spec\n got %s\nwant %s", show(spec), show(tc.want))
			}
			if !reflect.DeepEqual(secrets, tc.secrets) {
				t.Errorf("secrets %#v, want %#v", secrets, tc.secrets)
			}
		})
	}
}

func show(s rh.Spec) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestCreateNameMustMatchTheFile(t *testing.T) {
	yamlPath := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(yamlPath, []byte("name: from-file\nbyo: {ips: [10.0.0.9]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := buildCreateArgs(t, map[string]string{"USER": "tester"}, "other", "-f", yamlPath)
	if rh.ErrorCode(err) != rh.EINVALID || !strings.Contains(err.Error(), "name") || !strings.Contains(err.Error(), "from-file") {
		t.Fatalf("a name differing from the file's: %v", err)
	}
}
