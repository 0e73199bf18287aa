// Package sm is the AWS side of the sagemakerworker: it turns a SageMaker
// cluster's spec into a CreateTrainingJob request, launches, describes and
// stops training jobs through its own small SageMaker client (api.go, on
// aws-sdk-go-v2's core: credentials, SigV4, retryer), resolves the IAM role, and
// classifies AWS errors so that only a definite answer ever changes a
// cluster's phase. It knows nothing about NATS.
//
// A SageMaker "cluster" is a long-running training job (as in Runhouse):
// either a compute backend, whose entry point is a keep-alive loop running
// sshd and exiting when idle for longer than autostop, or an estimator job
// described by a user's estimator file.
package sm

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
)

// DefaultRegion is used when neither the flags, the environment nor the
// profile name a region, as Runhouse did.
const DefaultRegion = "us-east-1"

// LoadConfig resolves credentials, region and endpoints the AWS way
// (environment, ~/.aws/config and credentials, SSO, role profiles), so
// AWS_PROFILE and profiles behave as users expect. profile and region
// override when non-empty. A config with no region gets DefaultRegion.
func LoadConfig(ctx context.Context, profile, region string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	// The SDK's own log lines (e.g. "falling back to IMDSv1" off EC2) would
	// land in rhcli's output; errors reach the user through our messages.
	opts = append(opts, config.WithLogger(logging.Nop{}))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		if profile != "" {
			return aws.Config{}, fmt.Errorf("loading AWS config for profile %q: %w", profile, err)
		}
		return aws.Config{}, fmt.Errorf("loading AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cfg, nil
}

// Options configure a Client. The zero value is production: endpoints come
// from the config (AWS_ENDPOINT_URL_SAGEMAKER, AWS_ENDPOINT_URL_STS, the
// profile's services section), as the SDK's NewFromConfig resolves them.
type Options struct {
	// SageMakerEndpoint and STSEndpoint, when set, are the endpoints used
	// (tests and `--sim`); they win over the environment.
	SageMakerEndpoint string
	STSEndpoint       string
	// IAMEndpoint, when set, is where GetRole goes instead of IAM's global
	// endpoint (tests and `--sim`).
	IAMEndpoint string
	// SageMakerConfigPaths are the SageMaker Python SDK defaults files read
	// for a default role, first match wins. Nil means
	// DefaultSageMakerConfigPaths(Getenv).
	SageMakerConfigPaths []string
	// Getenv reads the caller's environment: RH_SAGEMAKER_ROLE, the
	// SageMaker SDK's SAGEMAKER_*_CONFIG_OVERRIDE and, for Check's advice,
	// AWS_REGION. Nil reads none: a library takes its settings from its
	// caller (the AWS SDK's own conventions, in LoadConfig, aside).
	Getenv func(string) string
	// LaunchAttempts bounds Launch's own retries of answers that were not
	// definite (throttling, 5xx, network), on top of the retryer's. Default 6.
	LaunchAttempts int
	// LaunchBackoff is the first wait between those retries (doubling, with
	// jitter, up to 20 s). Default 500ms.
	LaunchBackoff time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (o Options) getenv(key string) string {
	if o.Getenv == nil {
		return ""
	}
	return o.Getenv(key)
}

// Client talks to SageMaker and STS for one AWS config.
type Client struct {
	STS  *sts.Client
	api  *api // SageMaker
	cfg  aws.Config
	opts Options
	log  *slog.Logger
}

// NewClient builds the SageMaker and STS clients so that users' endpoint
// settings apply unless opts override them.
func NewClient(cfg aws.Config, opts Options) *Client {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LaunchAttempts <= 0 {
		opts.LaunchAttempts = 6
	}
	if opts.LaunchBackoff <= 0 {
		opts.LaunchBackoff = 500 * time.Millisecond
	}
	if opts.SageMakerConfigPaths == nil {
		opts.SageMakerConfigPaths = DefaultSageMakerConfigPaths(opts.getenv)
	}
	stc := sts.NewFromConfig(cfg, func(o *sts.Options) {
		if opts.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(opts.STSEndpoint)
		}
	})
	return &Client{
		STS:  stc,
		api:  newAPI(cfg, opts.SageMakerEndpoint),
		cfg:  cfg,
		opts: opts,
		log:  opts.Logger.With("component", "sagemaker"),
	}
}

// Region is the region the clients use.
func (c *Client) Region() string { return c.cfg.Region }
