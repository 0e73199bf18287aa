package sm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/testkit"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk3bq8Zb0Zr8mJk8l0v8m3r0x7aVt2Yq5Q9y0b1XzLh rh@test"

type fakeNodes struct{}

func (fakeNodes) Provision(_ context.Context, _ string, n int, _ string) ([]sagemakersim.Endpoint, error) {
	return make([]sagemakersim.Endpoint, n), nil
}
func (fakeNodes) Release(context.Context, string) error { return nil }

// fastRetryer is the SDK's standard retryer with its real retry rules but
// millisecond backoff, so retry tests take no wall time.
func fastRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		o.RateLimiter = noLimit{}
	})
}

type noLimit struct{}

func (noLimit) GetToken(context.Context, uint) (func() error, error) {
	return func() error { return nil }, nil
}
func (noLimit) AddTokens(uint) error { return nil }

type testEnv struct {
	sim *sagemakersim.Server
	ts  *httptest.Server
	c   *Client
}

func newTestEnv(t *testing.T) *testEnv { return newTestEnvScale(t, 0) }

// newTestEnvScale runs the simulator at a time scale (0: its fast default);
// tests that must observe a short phase use a slower one.
func newTestEnvScale(t *testing.T, scale float64) *testEnv {
	t.Helper()
	sim := sagemakersim.New(sagemakersim.Options{Nodes: fakeNodes{}, AccountID: "123456789012", TimeScale: scale})
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { ts.Close(); sim.Close() })
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:     fastRetryer,
	}
	c := NewClient(cfg, Options{
		SageMakerEndpoint:    ts.URL,
		STSEndpoint:          ts.URL + "/sts",
		IAMEndpoint:          ts.URL,
		SageMakerConfigPaths: []string{},
		LaunchBackoff:        time.Millisecond,
	})
	return &testEnv{sim: sim, ts: ts, c: c}
}

func spec(cluster string, gen int64) ClusterSpec {
	return ClusterSpec{
		Cluster: cluster, Generation: gen, Region: "us-east-1",
		RoleArn:   "arn:aws:iam::123456789012:role/SageMakerRole",
		PublicKey: testKey, AutostopMins: -1,
	}
}

func waitPhase(t *testing.T, c *Client, name, want string) (string, *JobDescription) {
	t.Helper()
	var msg string
	var d *JobDescription
	testkit.WaitErr(t, 10*time.Second, "phase "+want+" of "+name, func() error {
		phase, m, desc, err := c.Status(context.Background(), name)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if phase != want {
			return fmt.Errorf("phase %s (%s)", phase, m)
		}
		msg, d = m, desc
		return nil
	})
	return msg, d
}

func TestLaunchDescribeStop(t *testing.T) {
	e := newTestEnvScale(t, 0.005) // Starting lasts 300 ms
	ctx := context.Background()
	in, err := BuildCreateInput(spec("demo", 1))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.c.Launch(ctx, in)
	if err != nil || res.Adopted || res.ARN != "arn:aws:sagemaker:us-east-1:123456789012:training-job/rh-demo-1" {
		t.Fatalf("launch: %+v %v", res, err)
	}
	if phase, _, _, err := e.c.Status(ctx, "rh-demo-1"); err != nil || phase != PhaseProvisioning {
		t.Fatalf("first phase %s %v", phase, err)
	}
	msg, d := waitPhase(t, e.c, "rh-demo-1", PhaseUp)
	if msg != "Training image download completed. Training in progress." || d.InstanceCount != 1 || len(d.Transitions) != 3 {
		t.Fatalf("up: %q %+v", msg, d)
	}
	if err := e.c.Stop(ctx, "rh-demo-1"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, e.c, "rh-demo-1", PhaseTerminated)
	// Teardown is idempotent: stopping a stopped or missing job is fine.
	if err := e.c.Stop(ctx, "rh-demo-1"); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := e.c.Stop(ctx, "rh-never-1"); err != nil {
		t.Fatalf("stop of missing job: %v", err)
	}
}

func TestIdleAutostopEndsJob(t *testing.T) {
	e := newTestEnvScale(t, 0.005)
	s := spec("idle", 3)
	s.AutostopMins = 1 // 300 ms at this scale
	in, err := BuildCreateInput(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Launch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, e.c, "rh-idle-3", PhaseUp)
	waitPhase(t, e.c, "rh-idle-3", PhaseTerminated)
}

func TestFailedJobMapsReason(t *testing.T) {
	e := newTestEnv(t)
	e.sim.FailNextJob("ClientError: image not found")
	in, _ := BuildCreateInput(spec("bad", 1))
	if _, err := e.c.Launch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	msg, _ := waitPhase(t, e.c, "rh-bad-1", PhaseFailed)
	if msg != "ClientError: image not found" {
		t.Fatalf("message %q", msg)
	}
}

func TestThrottlingStormExactlyOneJob(t *testing.T) {
	e := newTestEnv(t)
	// 7 throttles outlast the retryer's 3 attempts twice over: our retry must
	// carry on, and only one job may ever exist.
	e.sim.ThrottleNext(7)
	in, _ := BuildCreateInput(spec("storm", 1))
	res, err := e.c.Launch(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 3 || res.Adopted {
		t.Fatalf("result %+v", res)
	}
	created := 0
	for _, call := range e.sim.CreateCalls() {
		if call.Outcome == "created" {
			created++
		}
	}
	if created != 1 || e.sim.JobCount() != 1 || len(e.sim.CreateCalls()) != 8 {
		t.Fatalf("created %d, jobs %d, calls %+v", created, e.sim.JobCount(), e.sim.CreateCalls())
	}
}

func TestThrottlingOutlastsAttempts(t *testing.T) {
	e := newTestEnv(t)
	e.c.opts.LaunchAttempts = 2
	e.sim.ThrottleNext(100)
	in, _ := BuildCreateInput(spec("storm", 2))
	_, err := e.c.Launch(context.Background(), in)
	if err == nil || !IsRetryable(err) || IsResourceLimit(err) || IsNotFound(err) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	if e.sim.JobCount() != 0 {
		t.Fatal("a throttled create made a job")
	}
	// Describe under throttling is not "not found": never a reason to
	// launch again.
	_, _, _, err = e.c.Status(context.Background(), "rh-storm-2")
	if err == nil || !IsRetryable(err) || IsNotFound(err) {
		t.Fatalf("status under throttling: %v", err)
	}
}

func TestLostAnswerIsAdopted(t *testing.T) {
	e := newTestEnv(t)
	e.sim.LoseNextCreateAnswer(1)
	in, _ := BuildCreateInput(spec("lost", 4))
	res, err := e.c.Launch(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Adopted || res.ARN == "" {
		t.Fatalf("result %+v", res)
	}
	var outcomes []string
	for _, c := range e.sim.CreateCalls() {
		outcomes = append(outcomes, c.Outcome)
	}
	if strings.Join(outcomes, ",") != "lost-answer,ResourceInUse" || e.sim.JobCount() != 1 {
		t.Fatalf("calls %v jobs %d", outcomes, e.sim.JobCount())
	}
	// A redelivered create for the same generation adopts too.
	res, err = e.c.Launch(context.Background(), in)
	if err != nil || !res.Adopted {
		t.Fatalf("redelivered: %+v %v", res, err)
	}
}

func TestNameTakenByOtherGeneration(t *testing.T) {
	e := newTestEnv(t)
	in, _ := BuildCreateInput(spec("taken", 1))
	if _, err := e.c.Launch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	other := spec("taken", 2)
	other.JobName = "rh-taken-1"
	in2, _ := BuildCreateInput(other)
	_, err := e.c.Launch(context.Background(), in2)
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("want ErrNameTaken, got %v", err)
	}
}

func TestResourceLimitIsTyped(t *testing.T) {
	e := newTestEnv(t)
	e.sim.ResourceLimitNext(1)
	in, _ := BuildCreateInput(spec("quota", 1))
	res, err := e.c.Launch(context.Background(), in)
	var rle *APIError
	if !errors.As(err, &rle) || rle.Code != "ResourceLimitExceeded" || !IsResourceLimit(err) || IsRetryable(err) || res.Attempts != 1 {
		t.Fatalf("want ResourceLimitExceeded once, got %+v %v", res, err)
	}
}

func TestNotFound(t *testing.T) {
	e := newTestEnv(t)
	_, err := e.c.Describe(context.Background(), "rh-nope-1")
	if !IsNotFound(err) || IsRetryable(err) || IsInUse(err) {
		t.Fatalf("describe missing: %v", err)
	}
	phase, _, d, err := e.c.Status(context.Background(), "rh-nope-1")
	if err != nil || phase != PhaseTerminated || d != nil {
		t.Fatalf("status missing: %s %v", phase, err)
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	e := newTestEnv(t)
	e.sim.InternalErrorNext(10)
	_, err := e.c.Describe(context.Background(), "rh-x-1")
	if !IsRetryable(err) || IsNotFound(err) {
		t.Fatalf("5xx: %v", err)
	}
}

func TestNetworkAndCredentialErrorsAreRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := NewClient(aws.Config{
		Region: "us-east-1", Retryer: fastRetryer,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}, Options{SageMakerEndpoint: "http://" + addr, SageMakerConfigPaths: []string{}})
	_, _, _, err = c.Status(context.Background(), "rh-x-1")
	if err == nil || !IsRetryable(err) || IsNotFound(err) {
		t.Fatalf("refused connection: %v", err)
	}

	e := newTestEnv(t)
	broken := NewClient(aws.Config{
		Region: "us-east-1", Retryer: fastRetryer,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("token expired, run aws sso login")
		}),
	}, Options{SageMakerEndpoint: e.ts.URL, SageMakerConfigPaths: []string{}})
	in, _ := BuildCreateInput(spec("creds", 1))
	broken.opts.LaunchAttempts = 1
	_, err = broken.Launch(context.Background(), in)
	if err == nil || !IsRetryable(err) {
		t.Fatalf("credential failure: %v", err)
	}
	if e.sim.JobCount() != 0 {
		t.Fatal("job created without credentials")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.c.Describe(ctx, "x"); IsRetryable(err) {
		t.Fatalf("cancelled context counted as retryable: %v", err)
	}
}

func TestResolveRole(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	arn := "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"
	if got, err := e.c.ResolveRole(ctx, arn); err != nil || got != arn {
		t.Fatalf("ARN: %s %v", got, err)
	}
	if _, err := e.c.ResolveRole(ctx, "arn:aws:iam::123:role/x"); err == nil {
		t.Fatal("bad ARN accepted")
	}
	if got, err := e.c.ResolveRole(ctx, "MyRole"); err != nil || got != "arn:aws:iam::123456789012:role/MyRole" {
		t.Fatalf("name: %s %v", got, err)
	}
	if _, err := e.c.ResolveRole(ctx, "bad role!"); err == nil {
		t.Fatal("bad name accepted")
	}
	env := map[string]string{}
	e.c.opts.Getenv = func(k string) string { return env[k] }
	if _, err := e.c.ResolveRole(ctx, ""); !errors.Is(err, ErrNoRole) || !strings.Contains(err.Error(), "--role") {
		t.Fatalf("no role: %v", err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    RoleArn: "+arn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.c.opts.SageMakerConfigPaths = []string{filepath.Join(dir, "missing.yaml"), cfgPath}
	if got, err := e.c.ResolveRole(ctx, ""); err != nil || got != arn {
		t.Fatalf("from config: %s %v", got, err)
	}
	env[EnvRole] = "EnvRole"
	if got, err := e.c.ResolveRole(ctx, ""); err != nil || got != "arn:aws:iam::123456789012:role/EnvRole" {
		t.Fatalf("from env: %s %v", got, err)
	}
}

func TestLoadConfigHonoursEndpointEnv(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgFile, []byte("[profile work]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfgFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL_SAGEMAKER", e.ts.URL)
	t.Setenv("AWS_ENDPOINT_URL_STS", e.ts.URL+"/sts")
	ctx := context.Background()

	cfg, err := LoadConfig(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != DefaultRegion {
		t.Fatalf("region %q", cfg.Region)
	}
	c := NewClient(cfg, Options{SageMakerConfigPaths: []string{}})
	in, _ := BuildCreateInput(spec("envep", 1))
	if _, err := c.Launch(ctx, in); err != nil {
		t.Fatalf("launch through AWS_ENDPOINT_URL_SAGEMAKER: %v", err)
	}
	if e.sim.JobCount() != 1 {
		t.Fatal("job did not reach the simulator")
	}
	if got, err := c.ResolveRole(ctx, "R"); err != nil || got != "arn:aws:iam::123456789012:role/R" {
		t.Fatalf("STS through AWS_ENDPOINT_URL_STS: %s %v", got, err)
	}
	cfg, err = LoadConfig(ctx, "work", "")
	if err != nil || cfg.Region != "eu-west-1" {
		t.Fatalf("profile: %q %v", cfg.Region, err)
	}
	cfg, err = LoadConfig(ctx, "work", "ap-south-1")
	if err != nil || cfg.Region != "ap-south-1" {
		t.Fatalf("region override: %q %v", cfg.Region, err)
	}
	if _, err := LoadConfig(ctx, "nosuchprofile", ""); err == nil || !strings.Contains(err.Error(), "nosuchprofile") {
		t.Fatalf("missing profile: %v", err)
	}
}

func TestCheck(t *testing.T) {
	e := newTestEnv(t)
	items := e.c.Check(context.Background(), "MyRole")
	for _, it := range items {
		if !it.OK {
			t.Fatalf("not ready: %+v", it)
		}
	}
	broken := NewClient(aws.Config{
		Region: "us-east-1", Retryer: fastRetryer,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no credentials")
		}),
	}, Options{STSEndpoint: e.ts.URL + "/sts", SageMakerConfigPaths: []string{}})
	t.Setenv(EnvRole, "")
	items = broken.Check(context.Background(), "")
	if len(items) != 3 || items[0].OK || items[0].Fix == "" || !items[1].OK || items[2].OK || !strings.Contains(items[2].Fix, "--role") {
		t.Fatalf("items %+v", items)
	}
}

func TestBuildCreateInputComputeBackend(t *testing.T) {
	s := spec("cb", 7)
	s.AutostopMins = 45
	s.ConnectionWaitTime = time.Minute
	s.Tags = map[string]string{"team": "ml"}
	in, err := BuildCreateInput(s)
	if err != nil {
		t.Fatal(err)
	}
	if in.TrainingJobName != "rh-cb-7" || in.ResourceConfig == nil || in.StoppingCondition == nil ||
		in.StoppingCondition.MaxRuntimeInSeconds != 86400 || in.ResourceConfig.InstanceType != "ml.m5.large" ||
		in.ResourceConfig.InstanceCount != 1 || !in.RemoteDebugConfig.EnableRemoteDebug {
		t.Fatalf("input %+v", in)
	}
	if img := in.AlgorithmSpecification.TrainingImage; !strings.Contains(img, "pytorch-training:2.0.1-cpu-py310") {
		t.Fatalf("image %s", img)
	}
	env := in.Environment
	if env[EnvAutostopMins] != "45" || env[EnvConnectionWaitTime] != "60" || env[EnvKeepAlive] != "1" || env[EnvSSHPublicKey] != testKey ||
		env[EnvCluster] != "cb" || env[EnvGeneration] != "7" {
		t.Fatalf("env %v", env)
	}
	// The container runs the script reassembled from the chunks.
	args := in.AlgorithmSpecification.ContainerArguments
	if len(args) != 1 || len(args[0]) > 256 {
		t.Fatalf("args %q", args)
	}
	re := regexp.MustCompile(`\$\{(` + EnvKeepAliveScriptPrefix + `\d+)\}`)
	var script strings.Builder
	for _, m := range re.FindAllStringSubmatch(args[0], -1) {
		if len(env[m[1]]) > 512 {
			t.Fatalf("%s is %d chars", m[1], len(env[m[1]]))
		}
		script.WriteString(env[m[1]])
	}
	if script.String() != KeepAliveScript {
		t.Fatal("script chunks do not reassemble")
	}
	tags := map[string]string{}
	for _, tg := range in.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags[TagCluster] != "cb" || tags[TagGeneration] != "7" || tags["team"] != "ml" {
		t.Fatalf("tags %v", tags)
	}

	gpu := spec("g", 1)
	gpu.InstanceType = "ml.g5.xlarge"
	in, _ = BuildCreateInput(gpu)
	if img := in.AlgorithmSpecification.TrainingImage; !strings.Contains(img, "2.0.1-gpu-py310-cu118") {
		t.Fatalf("gpu image %s", img)
	}

	for name, mut := range map[string]func(*ClusterSpec){
		"rsa key":    func(s *ClusterSpec) { s.PublicKey = "ssh-rsa " + strings.Repeat("A", 716) },
		"no key":     func(s *ClusterSpec) { s.PublicKey = "" },
		"aws tag":    func(s *ClusterSpec) { s.Tags = map[string]string{"aws:x": "y"} },
		"bad type":   func(s *ClusterSpec) { s.InstanceType = "m5.large" },
		"bad role":   func(s *ClusterSpec) { s.RoleArn = "MyRole" },
		"bad name":   func(s *ClusterSpec) { s.JobName = "-x" },
		"long run":   func(s *ClusterSpec) { s.MaxRuntime = 29 * 24 * time.Hour },
		"bad output": func(s *ClusterSpec) { s.OutputPath = "/tmp/out" },
	} {
		s := spec("bad", 1)
		mut(&s)
		if _, err := BuildCreateInput(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEnvContractMatchesSimulator(t *testing.T) {
	pairs := [][2]string{
		{EnvSSHPublicKey, sagemakersim.EnvSSHPublicKey},
		{EnvKeepAlive, sagemakersim.EnvKeepAlive},
		{EnvAutostopMins, sagemakersim.EnvAutostopMins},
		{EnvConnectionWaitTime, sagemakersim.EnvConnectionWaitTime},
		{SSMTarget("j", 2), sagemakersim.Target("j", 2)},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("worker %q != simulator %q", p[0], p[1])
		}
	}
}

const estimatorYAML = `
image_uri: 123456789012.dkr.ecr.us-east-1.amazonaws.com/train:latest
command: [python, /opt/ml/code/train.py, --epochs, "3"]
hyperparameters:
  lr: 0.01
  epochs: 3
  layers: [64, 32]
environment:
  WANDB_MODE: offline
  SEED: 42
inputs:
  train: s3://bucket/train/
  test: s3://bucket/test/
output_path: s3://bucket/out/
instance_type: ml.g5.xlarge
instance_count: 2
max_run: 7200
use_spot: true
max_wait: 10800
volume_size: 100
`

func TestEstimatorParsingAndLaunch(t *testing.T) {
	est, err := ParseEstimator([]byte(estimatorYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := spec("est", 1)
	s.Estimator = est
	in, err := BuildCreateInput(s)
	if err != nil {
		t.Fatal(err)
	}
	a := in.AlgorithmSpecification
	if strings.Join(a.ContainerEntrypoint, " ") != "python" || strings.Join(a.ContainerArguments, " ") != "/opt/ml/code/train.py --epochs 3" {
		t.Fatalf("command %v %v", a.ContainerEntrypoint, a.ContainerArguments)
	}
	if in.HyperParameters["lr"] != "0.01" || in.HyperParameters["epochs"] != "3" || in.HyperParameters["layers"] != "[64,32]" {
		t.Fatalf("hyperparameters %v", in.HyperParameters)
	}
	if in.Environment["SEED"] != "42" || in.Environment[EnvKeepAlive] != "" {
		t.Fatalf("environment %v", in.Environment)
	}
	if len(in.InputDataConfig) != 2 || in.InputDataConfig[0].ChannelName != "test" ||
		in.ResourceConfig.InstanceCount != 2 || in.ResourceConfig.VolumeSizeInGB != 100 ||
		!in.EnableManagedSpotTraining || in.StoppingCondition.MaxWaitTimeInSeconds != 10800 ||
		in.StoppingCondition.MaxRuntimeInSeconds != 7200 {
		t.Fatalf("input %+v", in)
	}
	// The simulator accepts it.
	e := newTestEnv(t)
	if _, err := e.c.Launch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, e.c, "rh-est-1", PhaseTerminated) // runs to completion

	// JSON works too, and entry_point uses the framework convention.
	est, err = ParseEstimator([]byte(`{"entry_point": "train.py", "source_dir": "s3://b/src.tar.gz"}`))
	if err != nil {
		t.Fatal(err)
	}
	s.Estimator = est
	in, err = BuildCreateInput(s)
	if err != nil || in.HyperParameters["sagemaker_program"] != `"train.py"` || in.HyperParameters["sagemaker_submit_directory"] != `"s3://b/src.tar.gz"` {
		t.Fatalf("entry point: %v %v", in.HyperParameters, err)
	}

	// Conflicts between the cluster and its estimator are refused.
	s.Estimator = &Estimator{Command: []string{"x"}, InstanceType: "ml.p3.2xlarge"}
	s.InstanceType = "ml.m5.large"
	if _, err := BuildCreateInput(s); err == nil || !strings.Contains(err.Error(), "instance_type") {
		t.Fatalf("conflict: %v", err)
	}
}

func TestEstimatorStrict(t *testing.T) {
	for name, c := range map[string]struct{ doc, want string }{
		"unknown":     {"command: [x]\nmax_runn: 5\n", "max_runn"},
		"unknownjson": {`{"command": ["x"], "instance_typ": "ml.m5.large"}`, "instance_typ"},
		"duplicate":   {"command: [x]\ncommand: [y]\n", "command"},
		"both":        {"command: [x]\nentry_point: t.py\n", "not both"},
		"nothing":     {"instance_count: 1\n", "entry_point, command"},
		"local src":   {"entry_point: t.py\nsource_dir: ./src\n", "s3://"},
		"bad input":   {"command: [x]\ninputs: {train: /data}\n", "s3://"},
		"wait":        {"command: [x]\nmax_wait: 10\n", "use_spot"},
		"empty":       {"  \n", "empty"},
		"type":        {"command: [x]\ninstance_count: many\n", "instance_count"},
	} {
		_, err := ParseEstimator([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error mentioning %q", name, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "est.yaml")
	if err := os.WriteFile(path, []byte("command: [x]\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEstimator(path); err == nil || !strings.Contains(err.Error(), "bogus") || !strings.Contains(err.Error(), path) {
		t.Fatalf("LoadEstimator: %v", err)
	}
}

func TestJobName(t *testing.T) {
	cases := map[string]string{
		"demo":                  "rh-demo-1",
		"My_Cluster":            "",
		strings.Repeat("a", 63): "",
		"---":                   "",
		"":                      "",
		"日本":                    "",
	}
	for cluster, want := range cases {
		got := JobName(cluster, 1)
		if cluster == "My_Cluster" {
			if !strings.HasPrefix(got, "rh-my-cluster-") || got == JobName("my-cluster", 1) {
				t.Errorf("lossy name %q must carry a hash", got)
			}
		} else if want != "" && got != want {
			t.Errorf("JobName(%q) = %q, want %q", cluster, got, want)
		}
		if err := ValidJobName(got); err != nil {
			t.Errorf("JobName(%q): %v", cluster, err)
		}
	}
	if JobName(strings.Repeat("a", 70)+"x", 1) == JobName(strings.Repeat("a", 70)+"y", 1) {
		t.Error("truncated names collide")
	}
	if JobName("c", 1) == JobName("c", 2) {
		t.Error("generations collide")
	}
	prop := func(cluster string, gen int64) bool {
		n := JobName(cluster, gen)
		return jobNameRE.MatchString(n) && len(n) <= 63 && n == JobName(cluster, gen)
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 5000}); err != nil {
		t.Fatal(err)
	}
}

func FuzzJobName(f *testing.F) {
	for _, s := range []string{"", "a", "-", "rh", strings.Repeat("z", 200), "Ünïcode", "a--b", "x_y.z"} {
		f.Add(s, int64(1))
	}
	f.Add("c", int64(-9223372036854775808))
	f.Add(strings.Repeat("q", 80), int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, cluster string, gen int64) {
		n := JobName(cluster, gen)
		if !jobNameRE.MatchString(n) || len(n) > 63 {
			t.Fatalf("JobName(%q, %d) = %q is invalid", cluster, gen, n)
		}
	})
}

func TestSSMProxyCommand(t *testing.T) {
	if got := SSMProxyCommand(""); got != "aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters portNumber=%p" {
		t.Fatalf("got %q", got)
	}
	if got := SSMProxyCommand(SSMTarget("rh-x-1", 1), "my profile", "eu-west-1"); got != "aws --profile 'my profile' --region eu-west-1 ssm start-session --target sagemaker-training-job:rh-x-1_algo-1 --document-name AWS-StartSSHSession --parameters portNumber=%p" {
		t.Fatalf("got %q", got)
	}
	if got := SSMTargets("j", 2); len(got) != 2 || got[1] != "sagemaker-training-job:j_algo-2" {
		t.Fatalf("targets %v", got)
	}
}

func TestMapStatus(t *testing.T) {
	for _, c := range []struct {
		status, secondary, reason, phase string
	}{
		{"InProgress", "Starting", "", PhaseProvisioning},
		{"InProgress", "Pending", "", PhaseProvisioning},
		{"InProgress", "Downloading", "", PhaseProvisioning},
		{"InProgress", "LaunchingMLInstances", "", PhaseProvisioning},
		{"InProgress", "Training", "", PhaseUp},
		{"InProgress", "Interrupted", "", PhaseDegraded},
		{"InProgress", "Uploading", "", PhaseTearingDown},
		{"Stopping", "Stopping", "", PhaseTearingDown},
		{"Completed", "Completed", "", PhaseTerminated},
		{"Stopped", "MaxRuntimeExceeded", "", PhaseTerminated},
		{"Failed", "Failed", "AlgorithmError: x", PhaseFailed},
	} {
		phase, msg := MapStatus(&JobDescription{Status: c.status, SecondaryStatus: c.secondary, FailureReason: c.reason})
		if phase != c.phase || (c.reason != "" && msg != c.reason) {
			t.Errorf("%s/%s: %s %q", c.status, c.secondary, phase, msg)
		}
	}
}
