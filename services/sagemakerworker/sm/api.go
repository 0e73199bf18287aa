package sm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// This file is a small SageMaker client: the JSON 1.1 protocol (POST /,
// X-Amz-Target: SageMaker.<Op>), SigV4 with aws-sdk-go-v2's signer, the
// SDK's retryer, and only the operations and fields rh uses. It replaces
// the SDK's service/sagemaker, whose package initialisation (13k schema
// values, ~15-40 ms) every rhcli start paid for, CLI commands included.

// sdkID is SageMaker's service id in endpoint settings
// (AWS_ENDPOINT_URL_SAGEMAKER, a profile's `[services]` sagemaker key).
const sdkID = "SageMaker"

// maxResponse bounds a response body read into memory.
const maxResponse = 16 << 20

// APIError is an error answer of the SageMaker API: its code (e.g.
// ValidationException, ResourceInUse, ResourceLimitExceeded,
// ThrottlingException), message and HTTP status. Match it with errors.As;
// it also satisfies smithy.APIError and the SDK retryer's interfaces, so
// the retryer classifies it as it would the SDK's own errors.
type APIError struct {
	Code       string
	Message    string
	StatusCode int
	RequestID  string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("https response error StatusCode: %d, RequestID: %s, api error %s: %s", e.StatusCode, e.RequestID, e.Code, e.Message)
}

// ErrorCode is the error's code.
func (e *APIError) ErrorCode() string { return e.Code }

// ErrorMessage is AWS's message.
func (e *APIError) ErrorMessage() string { return e.Message }

// ErrorFault says whose fault the error is: the server's on a 5xx.
func (e *APIError) ErrorFault() smithy.ErrorFault {
	switch {
	case e.StatusCode >= 500:
		return smithy.FaultServer
	case e.StatusCode >= 400:
		return smithy.FaultClient
	}
	return smithy.FaultUnknown
}

// HTTPStatusCode is the answer's HTTP status (read by the retryer).
func (e *APIError) HTTPStatusCode() int { return e.StatusCode }

// SendError means a request got no answer at all (refused connection,
// reset, timeout): nothing definite was said. The retryer retries it.
type SendError struct{ Err error }

func (e *SendError) Error() string { return "request send failed, " + e.Err.Error() }

func (e *SendError) Unwrap() error { return e.Err }

// ConnectionError marks the error as a connection failure for the retryer.
func (e *SendError) ConnectionError() bool { return true }

// ResponseError is an HTTP error answer whose body is not an AWS error (a
// proxy or load balancer may have answered): not definite, as with the SDK.
type ResponseError struct {
	StatusCode int
	RequestID  string
	Err        error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("https response error StatusCode: %d, RequestID: %s, %v", e.StatusCode, e.RequestID, e.Err)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// HTTPStatusCode is the answer's HTTP status (read by the retryer).
func (e *ResponseError) HTTPStatusCode() int { return e.StatusCode }

// api is the wire side of a Client.
type api struct {
	endpoint string // base URL, no trailing slash
	region   string
	creds    aws.CredentialsProvider
	http     aws.HTTPClient
	retryer  aws.Retryer
}

func newAPI(cfg aws.Config, endpoint string) *api {
	a := &api{region: cfg.Region, http: cfg.HTTPClient}
	if a.http == nil {
		a.http = &http.Client{Transport: http.DefaultTransport}
	}
	a.endpoint = strings.TrimSuffix(cmpOr(endpoint, baseEndpoint(cfg)), "/")
	// As the SDK's clients do: cache credentials unless the config already
	// does.
	a.creds = cfg.Credentials
	if a.creds != nil && !aws.IsCredentialsProvider(a.creds, (*aws.CredentialsCache)(nil)) {
		if _, anon := a.creds.(aws.AnonymousCredentials); !anon {
			a.creds = aws.NewCredentialsCache(a.creds)
		}
	}
	switch {
	case cfg.Retryer != nil:
		a.retryer = cfg.Retryer()
	case cfg.RetryMode == aws.RetryModeAdaptive:
		a.retryer = retry.NewAdaptiveMode()
	default:
		a.retryer = retry.NewStandard()
	}
	if cfg.RetryMaxAttempts > 0 {
		a.retryer = retry.AddWithMaxAttempts(a.retryer, cfg.RetryMaxAttempts)
	}
	return a
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// baseEndpoint resolves SageMaker's endpoint as the SDK does: a service
// setting (AWS_ENDPOINT_URL_SAGEMAKER, the profile's services section)
// wins, then the global one (AWS_ENDPOINT_URL, the profile's
// endpoint_url, already in cfg.BaseEndpoint), then the region's standard
// endpoint. AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns the settings off
// (LoadDefaultConfig has then left cfg.BaseEndpoint nil).
func baseEndpoint(cfg aws.Config) string {
	type ignorer interface {
		GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error)
	}
	type serviceEndpoint interface {
		GetServiceBaseEndpoint(ctx context.Context, sdkID string) (string, bool, error)
	}
	ignore := false
	for _, s := range cfg.ConfigSources {
		if p, ok := s.(ignorer); ok {
			if v, found, err := p.GetIgnoreConfiguredEndpoints(context.Background()); found && err == nil {
				ignore = v
				break
			}
		}
	}
	_, global := os.LookupEnv("AWS_ENDPOINT_URL")
	_, service := os.LookupEnv("AWS_ENDPOINT_URL_SAGEMAKER")
	if !ignore && (service || !global) {
		for _, s := range cfg.ConfigSources {
			if p, ok := s.(serviceEndpoint); ok {
				v, found, err := p.GetServiceBaseEndpoint(context.Background(), sdkID)
				if err != nil {
					break
				}
				if found {
					return v
				}
			}
		}
	}
	if cfg.BaseEndpoint != nil && *cfg.BaseEndpoint != "" {
		return *cfg.BaseEndpoint
	}
	return "https://api.sagemaker." + cmpOr(cfg.Region, DefaultRegion) + "." + dnsSuffix(cfg.Region)
}

// dnsSuffix is the DNS suffix of a region's partition.
func dnsSuffix(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "amazonaws.com.cn"
	case strings.HasPrefix(region, "us-isob-"):
		return "sc2s.sgov.gov"
	case strings.HasPrefix(region, "us-isof-"):
		return "csp.hci.ic.gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "c2s.ic.gov"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "cloud.adc-e.uk"
	}
	return "amazonaws.com"
}

// call sends one operation, retrying what the retryer retries (throttling,
// 5xx, connection failures) as the SDK's retry middleware does, and
// decodes the answer into out. Errors are wrapped in a
// *smithy.OperationError naming the operation, as the SDK's were.
func (a *api) call(ctx context.Context, op string, in, out any) error {
	err := a.retry(ctx, op, in, out)
	if err != nil {
		return &smithy.OperationError{ServiceID: sdkID, OperationName: op, Err: err}
	}
	return nil
}

func (a *api) retry(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding request: %w", err)
	}
	maxAttempts := a.retryer.MaxAttempts()
	releaseRetry := func(error) error { return nil }
	for attempt := 1; ; attempt++ {
		releaseAttempt, err := a.attemptToken(ctx)
		if err != nil {
			return err
		}
		err = a.once(ctx, op, body, out)
		_ = releaseRetry(err)
		_ = releaseAttempt(err)
		if err == nil || !a.retryer.IsErrorRetryable(err) {
			return err
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return &retry.MaxAttemptsError{Attempt: attempt, Err: err}
		}
		rel, qerr := a.retryer.GetRetryToken(ctx, err)
		if qerr != nil {
			return errors.Join(err, qerr) // the retry quota is spent
		}
		releaseRetry = rel
		delay, derr := a.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return derr
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return &aws.RequestCanceledError{Err: ctx.Err()}
		case <-t.C:
		}
	}
}

func (a *api) attemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := a.retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return a.retryer.GetInitialToken(), nil
}

// once makes one signed attempt.
func (a *api) once(ctx context.Context, op string, body []byte, out any) error {
	resp, b, err := signedRequest{service: "sagemaker", region: a.region, endpoint: a.endpoint + "/", body: body,
		header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amz-Target": {"SageMaker." + op}},
	}.post(ctx, a.http, a.creds)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return decodeError(resp, b)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding %s response (HTTP %d): %w", op, resp.StatusCode, err)
	}
	return nil
}

// decodeError reads an error answer the way the SDK's JSON 1.1 client does:
// the code from X-Amzn-ErrorType, else the body's code or __type, each
// sanitised; the message from the body's message or Message. A body that
// is not JSON is a *ResponseError, not an answer.
func decodeError(resp *http.Response, body []byte) error {
	e := &APIError{Code: "UnknownError", StatusCode: resp.StatusCode,
		RequestID: resp.Header.Get("X-Amzn-RequestId")}
	var info struct {
		Code    string
		Type    string `json:"__type"`
		Message string // matches "message" too
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &info); err != nil {
			return &ResponseError{StatusCode: e.StatusCode, RequestID: e.RequestID,
				Err: fmt.Errorf("error answer is not JSON: %w", err)}
		}
	}
	if c := cmpOr(info.Code, info.Type); c != "" {
		e.Code = sanitizeCode(c)
	}
	if h := resp.Header.Get("X-Amzn-ErrorType"); h != "" {
		e.Code = sanitizeCode(h)
	}
	e.Message = cmpOr(info.Message, http.StatusText(resp.StatusCode))
	return e
}

// sanitizeCode strips a code's namespace ("ns#Code") and suffix
// ("Code:http://...").
func sanitizeCode(c string) string {
	if i := strings.IndexByte(c, ':'); i >= 0 {
		c = c[:i]
	}
	if i := strings.LastIndexByte(c, '#'); i >= 0 {
		c = c[i+1:]
	}
	return c
}

// epochTime is a timestamp as the JSON protocols send it: epoch seconds as
// a number, with a fraction.
type epochTime time.Time

func (t *epochTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("timestamp %s is not epoch seconds: %w", b, err)
	}
	*t = epochTime(time.UnixMilli(int64(math.Round(f * 1000))))
	return nil
}

func (t *epochTime) time() time.Time {
	if t == nil {
		return time.Time{}
	}
	return time.Time(*t)
}
