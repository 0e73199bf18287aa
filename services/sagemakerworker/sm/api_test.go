package sm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/smithy-go"
)

// capture is a SageMaker endpoint that records each request and answers
// with answer's status, headers and body.
type capture struct {
	reqs   []*http.Request
	bodies [][]byte
	answer func(w http.ResponseWriter)
}

func (c *capture) serve(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.reqs, c.bodies = append(c.reqs, r), append(c.bodies, b)
		if c.answer != nil {
			c.answer(w)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, `{"TrainingJobArn":"arn:aws:sagemaker:us-east-1:123456789012:training-job/x"}`)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func staticConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Retryer: fastRetryer,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session-token")}
}

// sdkInput is in as the SDK's own type, field by field.
func sdkInput(in *CreateTrainingJobInput) *sagemaker.CreateTrainingJobInput {
	a := in.AlgorithmSpecification
	out := &sagemaker.CreateTrainingJobInput{
		TrainingJobName: aws.String(in.TrainingJobName),
		RoleArn:         aws.String(in.RoleArn),
		AlgorithmSpecification: &types.AlgorithmSpecification{
			TrainingImage:       aws.String(a.TrainingImage),
			TrainingInputMode:   types.TrainingInputMode(a.TrainingInputMode),
			ContainerEntrypoint: a.ContainerEntrypoint,
			ContainerArguments:  a.ContainerArguments,
		},
		OutputDataConfig: &types.OutputDataConfig{S3OutputPath: aws.String(in.OutputDataConfig.S3OutputPath)},
		ResourceConfig: &types.ResourceConfig{
			InstanceType:   types.TrainingInstanceType(in.ResourceConfig.InstanceType),
			InstanceCount:  aws.Int32(in.ResourceConfig.InstanceCount),
			VolumeSizeInGB: aws.Int32(in.ResourceConfig.VolumeSizeInGB),
		},
		StoppingCondition: &types.StoppingCondition{
			MaxRuntimeInSeconds:  aws.Int32(in.StoppingCondition.MaxRuntimeInSeconds),
			MaxWaitTimeInSeconds: aws.Int32(in.StoppingCondition.MaxWaitTimeInSeconds),
		},
		RemoteDebugConfig:         &types.RemoteDebugConfig{EnableRemoteDebug: aws.Bool(in.RemoteDebugConfig.EnableRemoteDebug)},
		HyperParameters:           in.HyperParameters,
		Environment:               in.Environment,
		EnableManagedSpotTraining: aws.Bool(in.EnableManagedSpotTraining),
	}
	for _, c := range in.InputDataConfig {
		s := c.DataSource.S3DataSource
		out.InputDataConfig = append(out.InputDataConfig, types.Channel{
			ChannelName: aws.String(c.ChannelName),
			DataSource: &types.DataSource{S3DataSource: &types.S3DataSource{
				S3DataType: types.S3DataType(s.S3DataType), S3Uri: aws.String(s.S3Uri),
				S3DataDistributionType: types.S3DataDistribution(s.S3DataDistributionType),
			}},
		})
	}
	for _, tg := range in.Tags {
		out.Tags = append(out.Tags, types.Tag{Key: aws.String(tg.Key), Value: aws.String(tg.Value)})
	}
	return out
}

// The hand-written client sends what the SDK sends: the same operation
// header, content type, signing service and, member for member, the same
// JSON body (an estimator job uses every member rh sends).
func TestCreateRequestMatchesTheSDK(t *testing.T) {
	est, err := ParseEstimator([]byte(estimatorYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := spec("wire", 3)
	s.Estimator = est
	s.Tags = map[string]string{"team": "ml"}
	in, err := BuildCreateInput(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var ours, sdk capture
	c := NewClient(staticConfig(), Options{SageMakerEndpoint: ours.serve(t), SageMakerConfigPaths: []string{}})
	if _, err := c.Launch(ctx, in); err != nil {
		t.Fatal(err)
	}
	sc := sagemaker.NewFromConfig(staticConfig(), func(o *sagemaker.Options) { o.BaseEndpoint = aws.String(sdk.serve(t)) })
	if _, err := sc.CreateTrainingJob(ctx, sdkInput(in)); err != nil {
		t.Fatal(err)
	}
	if len(ours.reqs) != 1 || len(sdk.reqs) != 1 {
		t.Fatalf("requests: ours %d, SDK %d", len(ours.reqs), len(sdk.reqs))
	}
	for _, h := range []string{"X-Amz-Target", "Content-Type", "X-Amz-Security-Token"} {
		if got, want := ours.reqs[0].Header.Get(h), sdk.reqs[0].Header.Get(h); got != want {
			t.Errorf("%s: ours %q, SDK %q", h, got, want)
		}
	}
	if a := ours.reqs[0].Header.Get("Authorization"); !strings.Contains(a, "/us-east-1/sagemaker/aws4_request") {
		t.Errorf("Authorization %q is not SigV4 for sagemaker in us-east-1", a)
	}
	if ours.reqs[0].Method != http.MethodPost || ours.reqs[0].URL.Path != "/" {
		t.Errorf("request %s %s, want POST /", ours.reqs[0].Method, ours.reqs[0].URL.Path)
	}
	var got, want any
	if err := json.Unmarshal(ours.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sdk.bodies[0], &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body differs from the SDK's:\nours %s\nSDK  %s", ours.bodies[0], sdk.bodies[0])
	}
}

// Error answers decode as the SDK decodes them: the code from
// X-Amzn-ErrorType (namespace and suffix stripped) before the body's
// __type, the message under Message or message.
func TestErrorAnswersDecode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		header   string
		body     string
		code     string
		msg      string
		retry    bool
		notFound bool
	}{
		{"header wins", 400, "ResourceLimitExceeded:http://internal.amazon.com/coral/com.amazonaws.sagemaker/",
			`{"__type":"Other","Message":"quota"}`, "ResourceLimitExceeded", "quota", false, false},
		{"namespaced __type", 400, "", `{"__type":"com.amazonaws.sagemaker#ResourceInUse","Message":"exists"}`, "ResourceInUse", "exists", false, false},
		{"lowercase message", 403, "", `{"__type":"UnrecognizedClientException","message":"bad token"}`, "UnrecognizedClientException", "bad token", false, false},
		{"not found is a validation error", 400, "", `{"__type":"ValidationException","Message":"Requested resource not found."}`, "ValidationException", "Requested resource not found.", false, true},
		{"throttling", 400, "", `{"__type":"ThrottlingException","Message":"Rate exceeded"}`, "ThrottlingException", "Rate exceeded", true, false},
		{"5xx without a body", 503, "", ``, "UnknownError", "Service Unavailable", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cp capture
			cp.answer = func(w http.ResponseWriter) {
				if tc.header != "" {
					w.Header().Set("X-Amzn-ErrorType", tc.header)
				}
				w.Header().Set("X-Amzn-RequestId", "req-1")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}
			c := NewClient(staticConfig(), Options{SageMakerEndpoint: cp.serve(t), SageMakerConfigPaths: []string{}})
			_, err := c.Describe(context.Background(), "rh-x-1")
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != tc.code || ae.Message != tc.msg || ae.StatusCode != tc.status || ae.RequestID != "req-1" {
				t.Fatalf("got %#v from %v", ae, err)
			}
			var oe *smithy.OperationError
			if !errors.As(err, &oe) || oe.Operation() != "DescribeTrainingJob" {
				t.Fatalf("not an operation error naming DescribeTrainingJob: %v", err)
			}
			if IsRetryable(err) != tc.retry || IsNotFound(err) != tc.notFound {
				t.Fatalf("retryable %v, not found %v: %v", IsRetryable(err), IsNotFound(err), err)
			}
			// The retryer retried what it should, and only that.
			if want := map[bool]int{true: 3, false: 1}[tc.retry]; len(cp.reqs) != want {
				t.Fatalf("%d requests, want %d", len(cp.reqs), want)
			}
		})
	}
}

// An error answer that is not JSON (a proxy's HTML page) is no answer
// from SageMaker: retryable, as the SDK had it.
func TestNonJSONErrorIsNotAnAnswer(t *testing.T) {
	var cp capture
	cp.answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "<html>blocked by proxy</html>")
	}
	c := NewClient(staticConfig(), Options{SageMakerEndpoint: cp.serve(t), SageMakerConfigPaths: []string{}})
	_, err := c.Describe(context.Background(), "rh-x-1")
	var ae *APIError
	var re *ResponseError
	if errors.As(err, &ae) || !errors.As(err, &re) || re.StatusCode != 403 || !IsRetryable(err) || IsNotFound(err) {
		t.Fatalf("non-JSON 403: %v", err)
	}
}

// Timestamps arrive as epoch seconds with a fraction.
func TestDescribeDecodesTimestamps(t *testing.T) {
	var cp capture
	cp.answer = func(w http.ResponseWriter) {
		_, _ = io.WriteString(w, `{"TrainingJobName":"rh-t-1","TrainingJobStatus":"InProgress","SecondaryStatus":"Training",
"CreationTime":1764936000.123,"ResourceConfig":{"InstanceType":"ml.m5.large","InstanceCount":2,"VolumeSizeInGB":30},
"SecondaryStatusTransitions":[{"Status":"Starting","StartTime":1764936000.5,"EndTime":1764936060,"StatusMessage":"Preparing the instances for training"},
{"Status":"Training","StartTime":1764936060}],"BillableTimeInSeconds":7,"UnknownMember":{"x":1}}`)
	}
	c := NewClient(staticConfig(), Options{SageMakerEndpoint: cp.serve(t), SageMakerConfigPaths: []string{}})
	d, err := c.Describe(context.Background(), "rh-t-1")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Created.Equal(time.UnixMilli(1764936000123)) || d.InstanceCount != 2 || d.BillableSeconds != 7 || len(d.Transitions) != 2 {
		t.Fatalf("description %+v", d)
	}
	t0, t1 := d.Transitions[0], d.Transitions[1]
	if !t0.Start.Equal(time.UnixMilli(1764936000500)) || !t0.End.Equal(time.Unix(1764936060, 0)) || t0.Message != "Preparing the instances for training" ||
		t1.Status != SecondaryTraining || !t1.End.IsZero() {
		t.Fatalf("transitions %+v", d.Transitions)
	}
	if phase, _ := MapStatus(d); phase != PhaseUp {
		t.Fatalf("phase %s", phase)
	}
}

// Endpoints resolve as the SDK's NewFromConfig resolves them.
func TestEndpointResolution(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_SAGEMAKER", "")
	for _, tc := range []struct{ region, want string }{
		{"us-west-2", "https://api.sagemaker.us-west-2.amazonaws.com"},
		{"cn-north-1", "https://api.sagemaker.cn-north-1.amazonaws.com.cn"},
		{"", "https://api.sagemaker.us-east-1.amazonaws.com"},
	} {
		if got := baseEndpoint(aws.Config{Region: tc.region}); got != tc.want {
			t.Errorf("region %q: %s, want %s", tc.region, got, tc.want)
		}
	}
	if got := baseEndpoint(aws.Config{Region: "us-west-2", BaseEndpoint: aws.String("http://global")}); got != "http://global" {
		t.Errorf("cfg.BaseEndpoint: %s", got)
	}
}
