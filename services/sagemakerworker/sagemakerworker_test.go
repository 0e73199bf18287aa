package sagemakerworker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/simnodes"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/testkit"
	"github.com/rhq/rh/internal/worker"
	"github.com/rhq/rh/internal/workertest"
	"github.com/rhq/rh/services/sagemakerworker"
	"github.com/rhq/rh/services/sagemakerworker/sm"
	"github.com/rhq/rh/services/sshgateway"
)

// envProxy makes the test binary act as the nodes' ProxyCommand — what
// `rhcli sim ssm-proxy --endpoint URL --target %h` does — so the SSH leg is
// tested through a real proxy process without building rhcli.
const envProxy = "SMW_TEST_SSM_PROXY_ENDPOINT"

func TestMain(m *testing.M) {
	if endpoint := os.Getenv(envProxy); endpoint != "" {
		if err := sagemakersim.ProxyMain(context.Background(), endpoint, os.Args[1], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "ssm proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const testRole = "arn:aws:iam::123456789012:role/rh-test"

// fastRetryer is the SDK's standard retryer with its real retry rules but
// millisecond backoff and no retry quota, so storms cost no wall time.
func fastRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		o.RateLimiter = ratelimit.None
	})
}

type env struct {
	*workertest.Bus
	t   testing.TB
	reg *prometheus.Registry // the last started worker's metrics
	sim *sagemakersim.Server
	smc *sm.Client
	url string
}

func setup(t testing.TB, opts sagemakersim.Options) *env {
	t.Helper()
	bus := workertest.Start(t)
	sim := sagemakersim.New(opts)
	e := &env{Bus: bus, t: t, sim: sim, url: workertest.Serve(t, sim)}
	e.smc = e.quietClient(nil)
	return e
}

// quietClient is an sm client of the simulator (log nil: slog.Default()).
func (e *env) quietClient(log *slog.Logger) *sm.Client {
	return sm.NewClient(aws.Config{
		Region: "us-east-1", Retryer: fastRetryer,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}, sm.Options{SageMakerEndpoint: e.url, STSEndpoint: e.url, SageMakerConfigPaths: []string{}, LaunchBackoff: 5 * time.Millisecond, Logger: log})
}

// proxyCommand runs this test binary as the simulator's SSM proxy.
func (e *env) proxyCommand(string) string {
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	return envProxy + "=" + sshx.ShellQuote(e.url) + " exec " + sshx.ShellQuote(exe) + " %h"
}

// startWorker starts a worker; it is stopped at cleanup unless the test
// stops it first.
func (e *env) startWorker() func() {
	e.t.Helper()
	return e.startWorkerOn(e.NS.NC)
}

func (e *env) startWorkerOn(nc *nats.Conn) func() {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	w, err := sagemakerworker.Start(context.Background(), nc, sagemakerworker.Config{
		Client: e.smc, ProxyCommand: e.proxyCommand,
		SSHUser: sshnode.DefaultUser(), // the account simnodes' nodes accept
		PollMin: 2 * time.Millisecond, PollMax: 40 * time.Millisecond,
		ServiceConfig: worker.ServiceConfig{Registry: e.reg, Worker: workertest.FastLoop},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return workertest.StopAtCleanup(e.t, w.Stop)
}

func compute(n int) rh.Spec {
	return rh.Spec{Kind: rh.KindSageMaker, SageMaker: &rh.SageMakerSpec{Role: testRole, InstanceType: "ml.m5.large", NumInstances: n}}
}

// createdJobs counts the CreateTrainingJob calls that really created a job.
func (e *env) createdJobs() int {
	n := 0
	for _, c := range e.sim.CreateCalls() {
		if c.Outcome == "created" || c.Outcome == "lost-answer" {
			n++
		}
	}
	return n
}

// counter is the value of a counter of the last worker with these labels.
func (e *env) counter(name string, labels map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// TestComputeClusterLifecycleOverRealSSH: a 2-node compute backend comes Up
// with nodes addressed by SSM target, reachable through their proxy command
// with the key only rh_secrets holds; an autostop change says when it
// applies; a teardown stops the job and leaves nothing running.
func TestComputeClusterLifecycleOverRealSSH(t *testing.T) {
	nodes := simnodes.New(simnodes.Options{})
	t.Cleanup(func() { _ = nodes.Close() })
	// At the default time scale the job's 30 idle minutes last 1.8 s: a
	// loaded machine can spend that between Up and the first command, and
	// the job ends under the test. 0.01 makes them 18 s.
	e := setup(t, sagemakersim.Options{Nodes: nodes.SageMaker(), TimeScale: 0.01})
	e.startWorker()
	ctx := context.Background()

	// A day's connection wait (86 s at the simulator's scale) holds the
	// keep-alive's idle clock: the default 30 idle minutes are 1.8 s here,
	// which a loaded machine can spend before the SSH checks below.
	sp := compute(2)
	sp.SageMaker.ConnectionWaitTime = 86400
	e.Create("sm-a", sp)
	c := e.WaitSettled("sm-a", rh.PhaseUp)
	job := sm.JobName("sm-a", c.Generation)
	if len(c.Status.Nodes) != 2 {
		t.Fatalf("nodes = %+v, want 2", c.Status.Nodes)
	}
	for i, n := range c.Status.Nodes {
		if n.Address != sm.SSMTarget(job, i+1) || n.Port != 22 || n.User != sshnode.DefaultUser() || !n.Reachable || !strings.Contains(n.ProxyCommand, "%h") {
			t.Fatalf("node %d = %+v", i, n)
		}
	}
	info := c.Status.Info
	if info["job_name"] != job || !strings.HasSuffix(info["job_arn"], "training-job/"+job) || info["instance_type"] != "ml.m5.large" ||
		info["secondary_status"] != "Training" || info["workload"] != "compute-backend" || info["autostop"] != "30 min idle, then the job ends" /* the SageMaker default, none given */ {
		t.Fatalf("info = %v", info)
	}
	hist, err := e.Client.History(ctx, "sm-a")
	if err != nil {
		t.Fatal(err)
	}
	if msgs := historyText(hist); !strings.Contains(msgs, "creating training job "+job) || !strings.Contains(msgs, "Starting: ") || !strings.Contains(msgs, "Downloading: ") {
		t.Fatalf("history lacks the job's transitions:\n%s", msgs)
	}

	sec := e.Secrets("sm-a")
	if sec == nil || !strings.Contains(sec.SSHPrivateKey, "OPENSSH PRIVATE KEY") {
		t.Fatalf("key not in rh_secrets: %+v", sec)
	}
	// Through each node's own proxy command, as the gateway will connect.
	pool := &sshx.Pool{Dialer: &sshx.Dialer{HostKeys: &sshx.MemoryHostKeys{}}}
	t.Cleanup(func() { _ = pool.Close() })
	for _, n := range c.Status.Nodes {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		var out bytes.Buffer
		code, err := pool.Run(rctx, sshx.Target{Host: n.Address, Port: n.Port, User: n.User, PrivateKey: []byte(sec.SSHPrivateKey), ProxyCommand: n.ProxyCommand},
			sshx.RunRequest{Command: "echo ok-$((6*7))", Stdout: &out})
		cancel()
		if err != nil || code != 0 || strings.TrimSpace(out.String()) != "ok-42" {
			t.Fatalf("run on %s: code %d, %q, %v", n.Address, code, out.String(), err)
		}
	}
	_ = pool.Close()
	e.KeyNowhereElse(c, sec)

	if _, err := e.Client.SetAutostop(ctx, "sm-a", 45); err != nil {
		t.Fatal(err)
	}
	c = e.WaitFor("sm-a", "autostop noted", func(c *rh.Cluster) bool {
		return strings.HasPrefix(c.Status.Info["autostop_next"], "45 min") && c.Status.ObservedGeneration == c.Generation
	})
	if c.Status.Phase != rh.PhaseUp || !strings.Contains(c.Status.Message, "next `up`") {
		t.Fatalf("after autostop: %s %q", c.Status.Phase, c.Status.Message)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c, err = e.Client.Refresh(rctx, "sm-a"); err != nil || c.Status.Phase != rh.PhaseUp {
		t.Fatalf("refresh: %v %+v", err, c)
	}

	if _, err := e.Client.Teardown(ctx, "sm-a"); err != nil {
		t.Fatal(err)
	}
	c = e.WaitFor("sm-a", "Terminated", func(c *rh.Cluster) bool { return c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseTerminated || c.Status.Message != "training job "+job+" stopped" {
		t.Fatalf("after teardown: %s %q", c.Status.Phase, c.Status.Message)
	}
	if st, _, _ := e.sim.JobStatus(job); st != "Stopped" {
		t.Fatalf("job status %q, want Stopped", st)
	}
	if n := nodes.Live(""); n != 0 {
		t.Fatalf("%d sshd nodes still running", n)
	}
	e.Forgotten("sm-a")
	if e.createdJobs() != 1 || e.sim.JobCount() != 1 {
		t.Fatalf("created %d jobs, sim has %d; want 1", e.createdJobs(), e.sim.JobCount())
	}
}

func historyText(h []rh.Transition) string {
	var b strings.Builder
	for _, t := range h {
		fmt.Fprintf(&b, "%s %s\n", t.To, t.Message)
	}
	return b.String()
}

// TestEstimatorRunsToCompletion: an estimator cluster (its role given by
// name, resolved through STS) is followed through its secondary statuses to
// Terminated, each one in the cluster's history in order.
func TestEstimatorRunsToCompletion(t *testing.T) {
	e := setup(t, sagemakersim.Options{})
	e.startWorker()
	e.Create("train-1", rh.Spec{Kind: rh.KindSageMaker, SageMaker: &rh.SageMakerSpec{Role: "rh-test", Estimator: `
image_uri: 123456789012.dkr.ecr.us-east-1.amazonaws.com/train:latest
command: [python, train.py, --epochs, "3"]
instance_type: ml.c5.xlarge
instance_count: 2
hyperparameters: {lr: 0.01}
`}})
	c := e.WaitFor("train-1", "final", func(c *rh.Cluster) bool { return c.Status.Phase.Final() })
	if c.Status.Phase != rh.PhaseTerminated || !strings.HasPrefix(c.Status.Message, "job completed") {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
	if c.Status.Info["workload"] != "estimator" || c.Status.Info["instance_type"] != "ml.c5.xlarge" || c.Status.Info["instances"] != "2" {
		t.Fatalf("info = %v", c.Status.Info)
	}
	hist, err := e.Client.History(context.Background(), "train-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hist {
		if h.To == rh.PhasePending {
			continue // the registry's own entry
		}
		status, _, _ := strings.Cut(h.Message, ":")
		got = append(got, string(h.To)+"/"+strings.Fields(status)[0])
	}
	want := []string{"Provisioning/creating", "Provisioning/Starting", "Provisioning/Downloading", "Up/Training", "TearingDown/Uploading", "Terminated/job"}
	if !slices.Equal(got, want) {
		t.Fatalf("history = %v\nwant      %v\n%s", got, want, historyText(hist))
	}
	if e.createdJobs() != 1 {
		t.Fatalf("created %d jobs", e.createdJobs())
	}
}

// TestFailedJobFails: a job that fails ends its cluster Failed with AWS's
// FailureReason.
func TestFailedJobFails(t *testing.T) {
	e := setup(t, sagemakersim.Options{})
	e.startWorker()
	e.sim.FailNextJob("ClientError: Unable to pull image 123.dkr.ecr/none:latest")
	e.Create("doomed", compute(1))
	c := e.WaitSettled("doomed", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "ClientError: Unable to pull image") {
		t.Fatalf("message = %q", c.Status.Message)
	}
	if e.createdJobs() != 1 {
		t.Fatalf("created %d jobs; a failed job is not retried", e.createdJobs())
	}
}

// TestThrottlingStormCreatesOneJob: throttled calls and a create whose
// answer was lost are retried without ever creating a second job.
func TestThrottlingStormCreatesOneJob(t *testing.T) {
	e := setup(t, sagemakersim.Options{TimeScale: 0.005})
	e.startWorker()
	e.sim.ThrottleNext(40)
	e.Create("stormy", compute(2))
	e.WaitFor("stormy", "Provisioning", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseProvisioning })
	e.sim.ThrottleFor(300 * time.Millisecond)
	c := e.WaitSettled("stormy", rh.PhaseUp)
	if len(c.Status.Nodes) != 2 {
		t.Fatalf("nodes = %+v", c.Status.Nodes)
	}
	if e.createdJobs() != 1 || e.sim.JobCount() != 1 {
		t.Fatalf("created %d jobs, sim has %d; want 1: %+v", e.createdJobs(), e.sim.JobCount(), e.sim.CreateCalls())
	}
	if n := e.counter("rh_sagemakerworker_jobs_total", map[string]string{"outcome": "created"}); n != 1 {
		t.Fatalf("jobs created metric = %v", n)
	}
	if n := e.counter("rh_sagemakerworker_aws_errors_total", map[string]string{"op": "create", "code": "ThrottlingException"}); n < 1 {
		t.Fatalf("throttled creates metric = %v", n)
	}

	// A create whose answer is lost: the retry meets ResourceInUse and adopts.
	e.sim.LoseNextCreateAnswer(1)
	e.Create("lost", compute(1))
	e.WaitSettled("lost", rh.PhaseUp)
	if e.sim.JobCount() != 2 {
		t.Fatalf("sim has %d jobs, want 2: %+v", e.sim.JobCount(), e.sim.CreateCalls())
	}
}

// TestWorkerKilledMidCreateCreatesOnce: a worker stopped while its job is
// starting is replaced; the new one adopts the job instead of creating one.
func TestWorkerKilledMidCreateCreatesOnce(t *testing.T) {
	e := setup(t, sagemakersim.Options{TimeScale: 0.01})
	stopA := e.startWorker()
	e.Create("kill-me", compute(1))
	e.WaitFor("kill-me", "Starting", func(c *rh.Cluster) bool { return strings.HasPrefix(c.Status.Message, "Starting: ") })
	stopA()
	job := sm.JobName("kill-me", 1)
	if st, sec, _ := e.sim.JobStatus(job); st != "InProgress" || sec != "Starting" {
		t.Fatalf("job after the worker died = %s/%s, want InProgress/Starting", st, sec)
	}
	e.startWorker()
	e.WaitSettled("kill-me", rh.PhaseUp)
	if e.createdJobs() != 1 || e.sim.JobCount() != 1 {
		t.Fatalf("created %d jobs, sim has %d; want 1: %+v", e.createdJobs(), e.sim.JobCount(), e.sim.CreateCalls())
	}
}

// TestWorkerKilled9MidCreateIsReplacedPromptly: a worker that vanishes
// while its job starts (connection gone: no nak, no lease renewal, no
// heartbeat, as after kill -9) is replaced by one started next to it, which
// adopts the job once the lease and heartbeat lapse — seconds with the
// default settings, inside the wait's deadline — and creates no second job.
func TestWorkerKilled9MidCreateIsReplacedPromptly(t *testing.T) {
	e := setup(t, sagemakersim.Options{TimeScale: 0.01, Timings: sagemakersim.Timings{Starting: 200 * time.Second}})
	nc := e.Conn()
	stopA := e.startWorkerOn(nc)
	e.Create("kill-9", compute(1))
	e.WaitFor("kill-9", "Starting", func(c *rh.Cluster) bool { return strings.HasPrefix(c.Status.Message, "Starting: ") })
	workertest.Kill(nc, stopA)
	killed := time.Now()
	e.startWorker()
	e.WaitSettled("kill-9", rh.PhaseUp)
	t.Logf("Up %s after the kill (for the record, not asserted)", time.Since(killed).Round(time.Millisecond))
	if e.createdJobs() != 1 || e.sim.JobCount() != 1 {
		t.Fatalf("created %d jobs, sim has %d; want 1: %+v", e.createdJobs(), e.sim.JobCount(), e.sim.CreateCalls())
	}
}

// TestTeardownDuringProvisioning: a teardown overtakes the create that is
// following the job; the job is stopped and the cluster Terminated without
// waiting for the job to come up.
func TestTeardownDuringProvisioning(t *testing.T) {
	e := setup(t, sagemakersim.Options{TimeScale: 0.01, Timings: sagemakersim.Timings{Starting: 10 * time.Minute}})
	e.startWorker()
	ctx := context.Background()
	e.Create("short-lived", compute(2))
	e.WaitFor("short-lived", "Starting", func(c *rh.Cluster) bool { return strings.HasPrefix(c.Status.Message, "Starting: ") })
	e.TeardownOvertakes("short-lived", 4*time.Second)
	if st, _, _ := e.sim.JobStatus(sm.JobName("short-lived", 1)); st != "Stopped" {
		t.Fatalf("job status %q, want Stopped", st)
	}
	if err := e.Client.Delete(ctx, "short-lived", false); err != nil {
		t.Fatal(err)
	}
}

// TestResourceLimitFails: an account quota refusal fails the cluster with
// AWS's message, is not retried, and leaves nothing to stop.
func TestResourceLimitFails(t *testing.T) {
	e := setup(t, sagemakersim.Options{})
	e.startWorker()
	e.sim.ResourceLimitNext(1)
	e.Create("no-quota", compute(4))
	c := e.WaitSettled("no-quota", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "ResourceLimitExceeded") || !strings.Contains(c.Status.Message, "account-level service limit") {
		t.Fatalf("message = %q", c.Status.Message)
	}
	if n := len(e.sim.CreateCalls()); n != 1 || e.sim.JobCount() != 0 {
		t.Fatalf("create calls %d, jobs %d; want 1, 0", n, e.sim.JobCount())
	}
	if _, err := e.Client.Teardown(context.Background(), "no-quota"); err != nil {
		t.Fatal(err)
	}
	c = e.WaitFor("no-quota", "Terminated", func(c *rh.Cluster) bool { return c.Status.Phase == rh.PhaseTerminated })
	if c.Status.Message != sagemakerworker.MsgNoJob {
		t.Fatalf("message = %q", c.Status.Message)
	}
}

// TestMissingRoleFails: no role anywhere fails the cluster with sm's message
// naming the fix, before anything reaches SageMaker.
func TestMissingRoleFails(t *testing.T) {
	e := setup(t, sagemakersim.Options{})
	e.startWorker()
	spec := compute(1)
	spec.SageMaker.Role = ""
	e.Create("no-role", spec)
	c := e.WaitSettled("no-role", rh.PhaseFailed)
	if !strings.Contains(c.Status.Message, "no SageMaker execution role") || !strings.Contains(c.Status.Message, "--role") {
		t.Fatalf("message = %q", c.Status.Message)
	}
	if n := len(e.sim.CreateCalls()); n != 0 {
		t.Fatalf("%d create calls", n)
	}
}

// TestRefreshAfterIdleAutostop: the keep-alive ends an idle job behind rh's
// back; a refresh shows the cluster Terminated and forgets its key.
func TestRefreshAfterIdleAutostop(t *testing.T) {
	e := setup(t, sagemakersim.Options{TimeScale: 0.002})
	e.startWorker()
	spec := compute(1)
	spec.AutostopMins = new(1)
	e.Create("idle", spec)
	c := e.WaitSettled("idle", rh.PhaseUp)
	if c.Status.Info["autostop"] != "1 min idle, then the job ends" {
		t.Fatalf("info = %v", c.Status.Info)
	}
	job := sm.JobName("idle", c.Generation)
	testkit.Eventually(t, 10*time.Second, "the keep-alive ends the idle job", func() bool {
		st, _, _ := e.sim.JobStatus(job)
		return st == "Completed"
	})
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.Client.Refresh(rctx, "idle")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Phase != rh.PhaseTerminated || !strings.Contains(c.Status.Message, "ended (Completed)") {
		t.Fatalf("status = %s %q", c.Status.Phase, c.Status.Message)
	}
	if e.Secrets("idle") != nil {
		t.Fatal("key of an ended job still stored")
	}
}

// TestJobThatEndsBeforeTrainingNeverCameUp: a keep-alive job that completes
// before Training is not "job completed": the cluster fails saying it never
// came up, what SageMaker said, and where its logs are.
func TestJobThatEndsBeforeTrainingNeverCameUp(t *testing.T) {
	e := setup(t, sagemakersim.Options{})
	e.startWorker()
	e.sim.CompleteNextJobEarly("Training job completed: entry point exited with code 0 before sshd started")
	e.Create("stillborn", compute(1))
	c := e.WaitSettled("stillborn", rh.PhaseFailed)
	job := sm.JobName("stillborn", c.Generation)
	for _, want := range []string{
		"never came up", "ended Completed before reaching Training",
		"entry point exited with code 0 before sshd started",
		"/aws/sagemaker/TrainingJobs", job + "/algo-", "--log-stream-name-prefix " + job + "/",
	} {
		if !strings.Contains(c.Status.Message, want) {
			t.Errorf("message lacks %q: %q", want, c.Status.Message)
		}
	}
	if strings.HasPrefix(c.Status.Message, "job completed") {
		t.Errorf("message says the job completed: %q", c.Status.Message)
	}
	if e.Secrets("stillborn") != nil {
		t.Fatal("key of a job that never came up still stored")
	}
}

// TestResolvedRoleARNIsShown: a role given by name is resolved to its ARN
// (the caller's account, from STS), and the cluster shows that ARN.
func TestResolvedRoleARNIsShown(t *testing.T) {
	e := setup(t, sagemakersim.Options{})
	e.startWorker()
	spec := compute(1)
	spec.SageMaker.Role = "rh-by-name"
	e.Create("named-role", spec)
	c := e.WaitSettled("named-role", rh.PhaseUp)
	if got, want := c.Status.Info["role_arn"], "arn:aws:iam::123456789012:role/rh-by-name"; got != want {
		t.Fatalf("role_arn = %q, want %q (info %v)", got, want, c.Status.Info)
	}
}

// TestAutostopChangeReachesTheRunningJob: with an sshgateway running, an
// autostop change is written into the keep-alive's autostop_mins file on
// every node of the running job (over real SSH, through the nodes' proxy
// command), and the cluster shows the new limit as the job's own, not as
// one for the next `up`.
func TestAutostopChangeReachesTheRunningJob(t *testing.T) {
	nodes := simnodes.New(simnodes.Options{})
	t.Cleanup(func() { _ = nodes.Close() })
	e := setup(t, sagemakersim.Options{Nodes: nodes.SageMaker()})
	// The sim's nodes are sshd processes on this machine (no /opt/rh),
	// logging in as the harness's node user.
	nodeUser, err := sshnode.EnsureDefaultUser(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keepAlive := sshnode.UserTempDir(t, nodeUser)
	gw, err := sshgateway.Start(context.Background(), e.NS.NC, sshgateway.Config{KeepAliveDir: keepAlive, DisableAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	e.startWorker()
	ctx := context.Background()

	spec := compute(2)
	spec.AutostopMins = new(-1) // the simulator's keep-alive must not end the job meanwhile
	e.Create("sm-idle", spec)
	e.WaitSettled("sm-idle", rh.PhaseUp)
	if _, err := e.Client.SetAutostop(ctx, "sm-idle", 45); err != nil {
		t.Fatal(err)
	}
	// Logins through the proxy command into each node's shell are slow on
	// a loaded machine: wait longer than the bus's usual deadline.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := e.Client.WaitFor(wctx, "sm-idle", func(c *rh.Cluster) bool {
		return c.Status.ObservedGeneration == c.Generation && strings.Contains(c.Status.Message, "autostop")
	})
	if err != nil {
		t.Fatalf("waiting for the autostop change: %v (last: %+v)", err, c)
	}
	if c.Status.Info["autostop"] != "45 min idle, then the job ends" || c.Status.Info["autostop_next"] != "" ||
		!strings.Contains(c.Status.Message, "applied to the running job") {
		t.Fatalf("after autostop: %q %v", c.Status.Message, c.Status.Info)
	}
	b, err := os.ReadFile(filepath.Join(keepAlive, "autostop_mins"))
	if err != nil || string(b) != "45\n" {
		t.Fatalf("autostop_mins on the nodes = %q, %v", b, err)
	}

	// And back to never.
	if _, err := e.Client.SetAutostop(ctx, "sm-idle", -1); err != nil {
		t.Fatal(err)
	}
	if c, err := e.Client.WaitFor(wctx, "sm-idle", func(c *rh.Cluster) bool {
		return c.Status.ObservedGeneration == c.Generation && strings.HasPrefix(c.Status.Info["autostop"], "off")
	}); err != nil {
		t.Fatalf("waiting for autostop off: %v (last: %+v)", err, c)
	}
	if b, _ := os.ReadFile(filepath.Join(keepAlive, "autostop_mins")); string(b) != "-1\n" {
		t.Fatalf("autostop_mins = %q", b)
	}
}
