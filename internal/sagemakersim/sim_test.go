package sagemakersim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/rhq/rh/internal/testkit"
)

// fakeNodes records provisioning and hands out fixed endpoints.
type fakeNodes struct {
	mu       sync.Mutex
	endpoint Endpoint
	keys     map[string]string
	live     map[string]int
	released map[string]int
	provErr  error
}

func newFakeNodes(ep Endpoint) *fakeNodes {
	return &fakeNodes{endpoint: ep, keys: map[string]string{}, live: map[string]int{}, released: map[string]int{}}
}

func (f *fakeNodes) Provision(_ context.Context, job string, n int, key string) ([]Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.provErr != nil {
		return nil, f.provErr
	}
	f.keys[job] = key
	f.live[job] = n
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = f.endpoint
	}
	return eps, nil
}

func (f *fakeNodes) Release(_ context.Context, job string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, job)
	f.released[job]++
	return nil
}

func (f *fakeNodes) state(job string) (live int, released int, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[job], f.released[job], f.keys[job]
}

type env struct {
	sim   *Server
	ts    *httptest.Server
	sm    *sagemaker.Client
	nodes *fakeNodes
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	nodes := newFakeNodes(Endpoint{Host: "127.0.0.1", Port: 22, User: "root"})
	if opts.Nodes == nil {
		opts.Nodes = nodes
	}
	sim := New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { ts.Close(); sim.Close() })
	client := sagemaker.New(sagemaker.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint:     aws.String(ts.URL),
		RetryMaxAttempts: 1,
	})
	return &env{sim: sim, ts: ts, sm: client, nodes: nodes}
}

// waitKeepAliveChecks waits until a keep-alive job has checked for
// idleness n more times, failing at once if it leaves Training meanwhile.
func waitKeepAliveChecks(t *testing.T, sim *Server, job string, n int) {
	t.Helper()
	want := sim.KeepAliveChecks(job) + n
	testkit.WaitErr(t, 10*time.Second, fmt.Sprintf("%d keep-alive checks of %s", n, job), func() error {
		if st, sec, _ := sim.JobStatus(job); st != "InProgress" || sec != "Training" {
			t.Fatalf("keep-alive job left Training: %s/%s", st, sec)
		}
		if got := sim.KeepAliveChecks(job); got < want {
			return fmt.Errorf("%d checks, want %d", got, want)
		}
		return nil
	})
}

func (e *env) waitStatus(t *testing.T, name, status, secondary string) *sagemaker.DescribeTrainingJobOutput {
	t.Helper()
	var last *sagemaker.DescribeTrainingJobOutput
	testkit.Eventually(t, 10*time.Second, name+" "+status+"/"+secondary, func() bool {
		out, err := e.sm.DescribeTrainingJob(context.Background(), &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String(name)})
		if err != nil {
			t.Fatalf("describe: %v", err)
		}
		last = out
		return string(out.TrainingJobStatus) == status && (secondary == "" || string(out.SecondaryStatus) == secondary)
	})
	return last
}

func input(name string, envv map[string]string) *sagemaker.CreateTrainingJobInput {
	return &sagemaker.CreateTrainingJobInput{
		TrainingJobName: aws.String(name),
		RoleArn:         aws.String("arn:aws:iam::123456789012:role/SageMakerRole"),
		AlgorithmSpecification: &types.AlgorithmSpecification{
			TrainingImage:     aws.String("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.0.1-cpu-py310-ubuntu20.04-sagemaker"),
			TrainingInputMode: types.TrainingInputModeFile,
		},
		OutputDataConfig:  &types.OutputDataConfig{S3OutputPath: aws.String("s3://bucket/out/")},
		ResourceConfig:    &types.ResourceConfig{InstanceType: "ml.m5.large", InstanceCount: aws.Int32(2), VolumeSizeInGB: aws.Int32(30)},
		StoppingCondition: &types.StoppingCondition{MaxRuntimeInSeconds: aws.Int32(86400)},
		Environment:       envv,
	}
}

func keepAliveEnv(autostop string) map[string]string {
	return map[string]string{EnvKeepAlive: "1", EnvAutostopMins: autostop, EnvSSHPublicKey: "ssh-ed25519 AAAAC3Nza test"}
}

func statuses(out *sagemaker.DescribeTrainingJobOutput) []string {
	var s []string
	for _, tr := range out.SecondaryStatusTransitions {
		s = append(s, string(tr.Status))
	}
	return s
}

func TestJobCompletes(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	in := input("MyJob-1", map[string]string{EnvSSHPublicKey: "ssh-ed25519 AAAA key"})
	out, err := e.sm.CreateTrainingJob(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(out.TrainingJobArn), "arn:aws:sagemaker:us-east-1:123456789012:training-job/myjob-1"; got != want {
		t.Fatalf("arn %s, want %s", got, want)
	}
	e.waitStatus(t, "MyJob-1", "InProgress", "Training")
	if live, _, key := e.nodes.state("MyJob-1"); live != 2 || key != "ssh-ed25519 AAAA key" {
		t.Fatalf("provisioned %d nodes with key %q", live, key)
	}
	d := e.waitStatus(t, "MyJob-1", "Completed", "Completed")
	if got := strings.Join(statuses(d), ","); got != "Starting,Downloading,Training,Uploading,Completed" {
		t.Fatalf("transitions %s", got)
	}
	for i, tr := range d.SecondaryStatusTransitions {
		if tr.StartTime == nil || tr.EndTime == nil || aws.ToString(tr.StatusMessage) == "" {
			t.Fatalf("transition %d incomplete: %+v", i, tr)
		}
	}
	if aws.ToInt32(d.BillableTimeInSeconds) <= 0 || d.ModelArtifacts == nil || d.TrainingEndTime == nil {
		t.Fatalf("billable %v artifacts %v end %v", d.BillableTimeInSeconds, d.ModelArtifacts, d.TrainingEndTime)
	}
	if live, released, _ := e.nodes.state("MyJob-1"); live != 0 || released != 1 {
		t.Fatalf("nodes live %d released %d", live, released)
	}
}

func TestStopKeepAlive(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	if _, err := e.sm.CreateTrainingJob(ctx, input("ka", keepAliveEnv("-1"))); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "ka", "InProgress", "Training")
	// A keep-alive job with autostop -1 stays in Training.
	waitKeepAliveChecks(t, e.sim, "ka", 3)
	if st, sec, _ := e.sim.JobStatus("ka"); st != "InProgress" || sec != "Training" {
		t.Fatalf("keep-alive job left Training: %s/%s", st, sec)
	}
	if _, err := e.sm.StopTrainingJob(ctx, &sagemaker.StopTrainingJobInput{TrainingJobName: aws.String("ka")}); err != nil {
		t.Fatal(err)
	}
	d := e.waitStatus(t, "ka", "Stopped", "Stopped")
	if got := strings.Join(statuses(d), ","); got != "Starting,Downloading,Training,Stopping,Stopped" {
		t.Fatalf("transitions %s", got)
	}
	if live, released, _ := e.nodes.state("ka"); live != 0 || released != 1 {
		t.Fatalf("nodes live %d released %d", live, released)
	}
	_, err := e.sm.StopTrainingJob(ctx, &sagemaker.StopTrainingJobInput{TrainingJobName: aws.String("ka")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || !strings.Contains(ae.ErrorMessage(), "in status Stopped") {
		t.Fatalf("stop of stopped job: %v", err)
	}
}

func TestKeepAliveIdleAutostopAndSessions(t *testing.T) {
	echo := startEcho(t)
	nodes := newFakeNodes(echo)
	// At this scale autostop 1 min is 300 ms, a keep-alive tick 100 ms and
	// a proxy heartbeat 50 ms: slack enough for a loaded machine.
	e := newEnv(t, Options{Nodes: nodes, TimeScale: 0.005})
	ctx := context.Background()
	if _, err := e.sm.CreateTrainingJob(ctx, input("idle", keepAliveEnv("1"))); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "idle", "InProgress", "Training")

	// An open proxy session is activity: the job must outlive several
	// autostop periods while it lasts.
	pr, pw := io.Pipe()
	pctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); pw.Close() })
	var out testkit.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- ProxyMain(pctx, e.ts.URL, Target("idle", 1), pr, &out) }()
	if _, err := pw.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "echo", func() bool { return out.String() == "ping\n" })
	waitKeepAliveChecks(t, e.sim, "idle", 9) // 3 autostop periods of 3 ticks with a live session
	if st, sec, _ := e.sim.JobStatus("idle"); st != "InProgress" || sec != "Training" {
		t.Fatalf("job with a live session stopped: %s/%s", st, sec)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("proxy: %v", err)
	}
	// Now idle: the keep-alive exits and the job completes.
	d := e.waitStatus(t, "idle", "Completed", "Completed")
	if live, released, _ := nodes.state("idle"); live != 0 || released != 1 {
		t.Fatalf("nodes live %d released %d", live, released)
	}
	_ = d
}

func TestMaxRuntimeExceeded(t *testing.T) {
	e := newEnv(t, Options{})
	in := input("mr", keepAliveEnv("-1"))
	in.StoppingCondition.MaxRuntimeInSeconds = aws.Int32(300) // 300 ms
	if _, err := e.sm.CreateTrainingJob(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "mr", "Stopped", "MaxRuntimeExceeded")
}

func TestInjectedFailures(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	e.sim.FailNextJob("ClientError: Unable to pull image")
	if _, err := e.sm.CreateTrainingJob(ctx, input("f1", nil)); err != nil {
		t.Fatal(err)
	}
	d := e.waitStatus(t, "f1", "Failed", "Failed")
	if aws.ToString(d.FailureReason) != "ClientError: Unable to pull image" {
		t.Fatalf("reason %q", aws.ToString(d.FailureReason))
	}

	if _, err := e.sm.CreateTrainingJob(ctx, input("f2", keepAliveEnv("-1"))); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "f2", "InProgress", "Training")
	if err := e.sim.FailJob("f2", "AlgorithmError: boom"); err != nil {
		t.Fatal(err)
	}
	d = e.waitStatus(t, "f2", "Failed", "Failed")
	if aws.ToString(d.FailureReason) != "AlgorithmError: boom" {
		t.Fatalf("reason %q", aws.ToString(d.FailureReason))
	}
	if live, _, _ := e.nodes.state("f2"); live != 0 {
		t.Fatal("failed job kept its nodes")
	}

	e.nodes.mu.Lock()
	e.nodes.provErr = errors.New("no capacity")
	e.nodes.mu.Unlock()
	if _, err := e.sm.CreateTrainingJob(ctx, input("f3", nil)); err != nil {
		t.Fatal(err)
	}
	d = e.waitStatus(t, "f3", "Failed", "Failed")
	if !strings.Contains(aws.ToString(d.FailureReason), "no capacity") {
		t.Fatalf("reason %q", aws.ToString(d.FailureReason))
	}
}

func TestSpotInterrupted(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	in := input("spot", keepAliveEnv("-1"))
	in.EnableManagedSpotTraining = aws.Bool(true)
	in.StoppingCondition.MaxWaitTimeInSeconds = aws.Int32(86400)
	if _, err := e.sm.CreateTrainingJob(ctx, in); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "spot", "InProgress", "Training")
	if err := e.sim.InterruptSpot("spot"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "spot", "InProgress", "Interrupted")
	d := e.waitStatus(t, "spot", "InProgress", "Training")
	if got := strings.Join(statuses(d), ","); got != "Starting,Downloading,Training,Interrupted,Starting,Downloading,Training" {
		t.Fatalf("transitions %s", got)
	}
	if _, released, _ := e.nodes.state("spot"); released != 1 {
		t.Fatalf("released %d times", released)
	}
	if err := e.sim.InterruptSpot("nope"); err == nil {
		t.Fatal("interrupting a missing job succeeded")
	}
}

func TestErrorsAreTyped(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()

	_, err := e.sm.DescribeTrainingJob(ctx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String("missing")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || ae.ErrorMessage() != "Requested resource not found." {
		t.Fatalf("missing job: %v", err)
	}

	if _, err := e.sm.CreateTrainingJob(ctx, input("dup", nil)); err != nil {
		t.Fatal(err)
	}
	_, err = e.sm.CreateTrainingJob(ctx, input("dup", nil))
	var inUse *types.ResourceInUse
	if !errors.As(err, &inUse) {
		t.Fatalf("duplicate: %T %v", err, err)
	}

	e.sim.ResourceLimitNext(1)
	_, err = e.sm.CreateTrainingJob(ctx, input("limited", nil))
	var limit *types.ResourceLimitExceeded
	if !errors.As(err, &limit) || !strings.Contains(limit.ErrorMessage(), "ml.m5.large") {
		t.Fatalf("limit: %T %v", err, err)
	}

	e.sim.ThrottleNext(1)
	_, err = e.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{})
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" || ae.ErrorMessage() != "Rate exceeded" ||
		!errors.As(err, &re) || re.HTTPStatusCode() != 400 {
		t.Fatalf("throttle: %v", err)
	}

	e.sim.InternalErrorNext(1)
	_, err = e.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{})
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 || !errors.As(err, &ae) || ae.ErrorCode() != "InternalFailure" {
		t.Fatalf("5xx: %v", err)
	}

	calls := e.sim.CreateCalls()
	var outcomes []string
	for _, c := range calls {
		outcomes = append(outcomes, c.Outcome)
	}
	if got := strings.Join(outcomes, ","); got != "created,ResourceInUse,ResourceLimitExceeded" {
		t.Fatalf("create log %s", got)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	long := strings.Repeat("k", 513)
	many := map[string]string{}
	for i := range 101 {
		many[fmt.Sprintf("V%d", i)] = "x"
	}
	cases := []struct {
		name   string
		mutate func(*sagemaker.CreateTrainingJobInput)
		want   string
	}{
		{"name", func(in *sagemaker.CreateTrainingJobInput) { in.TrainingJobName = aws.String("-bad") }, "trainingJobName"},
		{"name64", func(in *sagemaker.CreateTrainingJobInput) { in.TrainingJobName = aws.String(strings.Repeat("a", 64)) }, "trainingJobName"},
		{"role", func(in *sagemaker.CreateTrainingJobInput) { in.RoleArn = aws.String("arn:aws:iam::12:user/x") }, "roleArn"},
		{"noresource", func(in *sagemaker.CreateTrainingJobInput) { in.ResourceConfig = nil }, "ResourceConfig"},
		{"nostop", func(in *sagemaker.CreateTrainingJobInput) { in.StoppingCondition = nil }, "MaxRuntimeInSeconds"},
		{"envlong", func(in *sagemaker.CreateTrainingJobInput) { in.Environment = map[string]string{"K": long} }, "512"},
		{"envmany", func(in *sagemaker.CreateTrainingJobInput) { in.Environment = many }, "100"},
		{"envkey", func(in *sagemaker.CreateTrainingJobInput) { in.Environment = map[string]string{"1BAD": "x"} }, "Map keys"},
		{"awstag", func(in *sagemaker.CreateTrainingJobInput) {
			in.Tags = []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}
		}, "aws:"},
		{"tags51", func(in *sagemaker.CreateTrainingJobInput) {
			for i := range 51 {
				in.Tags = append(in.Tags, types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("v")})
			}
		}, "50"},
		{"spotnowait", func(in *sagemaker.CreateTrainingJobInput) { in.EnableManagedSpotTraining = aws.Bool(true) }, "MaxWaitTimeInSeconds"},
		{"arglong", func(in *sagemaker.CreateTrainingJobInput) {
			in.AlgorithmSpecification.ContainerArguments = []string{strings.Repeat("a", 257)}
		}, "256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := input("valid-"+c.name, nil)
			c.mutate(in)
			_, err := e.sm.CreateTrainingJob(ctx, in)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || !strings.Contains(ae.ErrorMessage(), c.want) {
				t.Fatalf("got %v, want ValidationException mentioning %q", err, c.want)
			}
		})
	}
	if n := e.sim.JobCount(); n != 0 {
		t.Fatalf("%d jobs created by invalid requests", n)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	for i := range 25 {
		if _, err := e.sm.CreateTrainingJob(ctx, input(fmt.Sprintf("list-%02d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	p := sagemaker.NewListTrainingJobsPaginator(e.sm, &sagemaker.ListTrainingJobsInput{MaxResults: aws.Int32(10), SortBy: types.SortByName, SortOrder: types.SortOrderAscending})
	var names []string
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, s := range page.TrainingJobSummaries {
			names = append(names, aws.ToString(s.TrainingJobName))
			if s.CreationTime == nil || s.TrainingJobStatus == "" {
				t.Fatalf("summary incomplete: %+v", s)
			}
		}
	}
	if pages != 3 || len(names) != 25 || names[0] != "list-00" || names[24] != "list-24" {
		t.Fatalf("pages %d names %v", pages, names)
	}
	for _, bad := range []int32{0, 101} {
		_, err := e.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{MaxResults: aws.Int32(bad)})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
			t.Fatalf("MaxResults %d: %v", bad, err)
		}
	}
	out, err := e.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{NameContains: aws.String("list-1"), MaxResults: aws.Int32(100)})
	if err != nil || len(out.TrainingJobSummaries) != 10 {
		t.Fatalf("NameContains: %v %d", err, len(out.TrainingJobSummaries))
	}
}

func TestAuthRequired(t *testing.T) {
	e := newEnv(t, Options{})
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "SageMaker.ListTrainingJobs")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "MissingAuthenticationTokenException") ||
		!strings.Contains(string(body), `"message":"Missing Authentication Token"`) {
		t.Fatalf("unsigned: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	}

	// Signed for the wrong service.
	req, _ = http.NewRequest(http.MethodPost, e.ts.URL+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "SageMaker.ListTrainingJobs")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Date", "20250101T000000Z")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("a", 64))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "InvalidSignatureException") {
		t.Fatalf("wrong service: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

func TestSTSGetCallerIdentity(t *testing.T) {
	e := newEnv(t, Options{AccountID: "111122223333"})
	for _, base := range []string{e.ts.URL + "/sts", e.ts.URL} {
		c := sts.New(sts.Options{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
			BaseEndpoint: aws.String(base),
		})
		out, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Account) != "111122223333" || aws.ToString(out.UserId) != "AKIDTEST" || !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:iam::111122223333:") {
			t.Fatalf("identity %+v", out)
		}
	}
	c := sts.New(sts.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, BaseEndpoint: aws.String(e.ts.URL + "/sts")})
	_, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned STS: %v", err)
	}
}

func TestProxyMainEcho(t *testing.T) {
	echo := startEcho(t)
	e := newEnv(t, Options{Nodes: newFakeNodes(echo)})
	ctx := context.Background()

	// Not yet a job: a clear error.
	err := ProxyMain(ctx, e.ts.URL, Target("px", 1), strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "InvalidTarget") {
		t.Fatalf("missing job: %v", err)
	}
	if _, err := e.sm.CreateTrainingJob(ctx, input("px", keepAliveEnv("-1"))); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "px", "InProgress", "Training")

	var out bytes.Buffer
	if err := ProxyMain(ctx, e.ts.URL, Target("px", 2), strings.NewReader("hello over ssm\n"), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello over ssm\n" {
		t.Fatalf("echoed %q", out.String())
	}
	err = ProxyMain(ctx, e.ts.URL, Target("px", 3), strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "TargetNotConnected") {
		t.Fatalf("node 3 of 2: %v", err)
	}
	if _, _, err := ParseTarget("i-123"); err == nil {
		t.Fatal("ParseTarget accepted a non-SageMaker target")
	}
	if j, n, err := ParseTarget(Target("a_algo-b", 7)); err != nil || j != "a_algo-b" || n != 7 {
		t.Fatalf("ParseTarget: %q %d %v", j, n, err)
	}
}

func TestFaultsEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	resp, err := http.Post(e.ts.URL+"/_sim/faults", "application/json", strings.NewReader(`{"resource_limit_next":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, err = e.sm.CreateTrainingJob(context.Background(), input("x", nil))
	var limit *types.ResourceLimitExceeded
	if !errors.As(err, &limit) {
		t.Fatalf("want ResourceLimitExceeded, got %v", err)
	}
	resp, err = http.Post(e.ts.URL+"/_sim/faults", "application/json", strings.NewReader(`{"typo":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown fault field: status %d", resp.StatusCode)
	}
}

// startEcho runs a TCP echo server standing in for a node's sshd.
func startEcho(t *testing.T) Endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	return Endpoint{Host: "127.0.0.1", Port: addr.Port, User: "root"}
}
