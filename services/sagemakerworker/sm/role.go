package sm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"sigs.k8s.io/yaml"

	"github.com/rhq/rh/internal/lazyre"
)

// EnvRole names an environment variable that may hold the default role
// (an ARN or a role name) when --role is not given.
const EnvRole = "RH_SAGEMAKER_ROLE"

var (
	roleARNRE  = lazyre.New(`^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	roleNameRE = lazyre.New(`^[a-zA-Z_0-9+=,.@\-]+(/[a-zA-Z_0-9+=,.@\-]+)*$`)
)

// ErrNoRole means no role was given and none is configured.
var ErrNoRole = errors.New("no SageMaker execution role: pass --role NAME_OR_ARN, set " + EnvRole +
	", or set SageMaker.TrainingJob.RoleArn in ~/.config/sagemaker/config.yaml")

// DefaultSageMakerConfigPaths are where the SageMaker Python SDK reads its
// defaults: the user config (SAGEMAKER_USER_CONFIG_OVERRIDE or
// ~/.config/sagemaker/config.yaml) before the admin config
// (SAGEMAKER_ADMIN_CONFIG_OVERRIDE or /etc/xdg/sagemaker/config.yaml), the
// overrides read with getenv.
func DefaultSageMakerConfigPaths(getenv func(string) string) []string {
	var paths []string
	if p := getenv("SAGEMAKER_USER_CONFIG_OVERRIDE"); p != "" {
		paths = append(paths, p)
	} else if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".config", "sagemaker", "config.yaml"))
	}
	if p := getenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE"); p != "" {
		paths = append(paths, p)
	} else {
		paths = append(paths, "/etc/xdg/sagemaker/config.yaml")
	}
	return paths
}

// ValidRoleARN reports whether s is a well-formed IAM role ARN.
func ValidRoleARN(s string) bool { return len(s) >= 20 && len(s) <= 2048 && roleARNRE.MatchString(s) }

// ResolveRole turns what the user gave into a role ARN: a full ARN is checked
// and kept; a bare role name (optionally with a path) becomes
// arn:<partition>:iam::<account>:role/<name> with the account of the caller
// (STS GetCallerIdentity); empty falls back to EnvRole, then the SageMaker
// defaults config's SageMaker.TrainingJob.RoleArn, else ErrNoRole.
func (c *Client) ResolveRole(ctx context.Context, role string) (string, error) {
	role = strings.TrimSpace(role)
	if role == "" {
		r, src, err := c.DefaultRole()
		if err != nil {
			return "", err
		}
		c.log.Debug("using default SageMaker role", "source", src)
		role = r
	}
	if strings.HasPrefix(role, "arn:") {
		if !ValidRoleARN(role) {
			return "", fmt.Errorf("role %q is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)", role)
		}
		return role, nil
	}
	if len(role) > 512 || !roleNameRE.MatchString(role) {
		return "", fmt.Errorf("role %q is neither an IAM role ARN nor a role name (letters, digits and +=,.@_-)", role)
	}
	out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("resolving role name %q needs the account id from STS GetCallerIdentity: %w", role, err)
	}
	partition := "aws"
	if out.Arn != nil {
		if parts := strings.SplitN(*out.Arn, ":", 3); len(parts) == 3 && parts[1] != "" {
			partition = parts[1]
		}
	}
	if out.Account == nil || *out.Account == "" {
		return "", fmt.Errorf("resolving role name %q: STS answered no account id", role)
	}
	arn := fmt.Sprintf("arn:%s:iam::%s:role/%s", partition, *out.Account, role)
	if !ValidRoleARN(arn) {
		return "", fmt.Errorf("role %q resolved to an invalid ARN %q", role, arn)
	}
	return arn, nil
}

// DefaultRole returns the configured default role (an ARN or name) and
// where it came from, or ErrNoRole.
func (c *Client) DefaultRole() (role, source string, err error) {
	if r := strings.TrimSpace(c.opts.getenv(EnvRole)); r != "" {
		return r, EnvRole, nil
	}
	for _, p := range c.opts.SageMakerConfigPaths {
		r, err := roleFromSageMakerConfig(p)
		if err != nil {
			return "", "", err
		}
		if r != "" {
			return r, p, nil
		}
	}
	return "", "", ErrNoRole
}

// roleFromSageMakerConfig reads SageMaker.TrainingJob.RoleArn from a
// SageMaker Python SDK defaults file. A missing file is not an error.
func roleFromSageMakerConfig(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading SageMaker defaults %s: %w", path, err)
	}
	var doc struct {
		SageMaker struct {
			TrainingJob struct {
				RoleArn string `json:"RoleArn"`
			} `json:"TrainingJob"`
		} `json:"SageMaker"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("parsing SageMaker defaults %s: %w", path, err)
	}
	return strings.TrimSpace(doc.SageMaker.TrainingJob.RoleArn), nil
}
