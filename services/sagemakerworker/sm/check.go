package sm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CheckItem is one readiness item for `rhcli check`.
type CheckItem struct {
	Name   string // "credentials", "region", "role"
	OK     bool
	Detail string // what was found
	Fix    string // how to make it ready, when not OK
}

// Check reports whether SageMaker clusters can be launched from here:
// credentials resolve, a region is set, and role (or the configured default
// role) resolves to an ARN. It never creates anything.
func (c *Client) Check(ctx context.Context, role string) []CheckItem {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var items []CheckItem

	credsOK := false
	if c.cfg.Credentials == nil {
		items = append(items, CheckItem{Name: "credentials", Detail: "no credentials provider",
			Fix: "configure AWS credentials: `aws configure`, `aws sso login`, AWS_PROFILE or --profile"})
	} else if creds, err := c.cfg.Credentials.Retrieve(ctx); err != nil {
		items = append(items, CheckItem{Name: "credentials", Detail: err.Error(),
			Fix: "configure AWS credentials: `aws configure`, `aws sso login --profile P`, AWS_PROFILE or --profile"})
	} else if creds.Expired() {
		items = append(items, CheckItem{Name: "credentials", Detail: "credentials have expired",
			Fix: "refresh them (`aws sso login`) or choose another profile"})
	} else {
		credsOK = true
		items = append(items, CheckItem{Name: "credentials", OK: true, Detail: "from " + CredentialSource(creds.Source)})
	}

	region := CheckItem{Name: "region", OK: c.cfg.Region != "", Detail: c.cfg.Region}
	if c.opts.getenv("AWS_REGION") == "" && c.opts.getenv("AWS_DEFAULT_REGION") == "" && c.cfg.Region == DefaultRegion {
		region.Detail += " (default; set AWS_REGION, the profile's region or --region to change)"
	}
	if !region.OK {
		region.Fix = "set AWS_REGION, `region` in ~/.aws/config, or --region"
	}
	items = append(items, region)

	roleItem := CheckItem{Name: "role"}
	switch {
	case role == "" && !credsOK:
		if r, src, err := c.DefaultRole(); err != nil {
			roleItem.Detail, roleItem.Fix = err.Error(), "pass --role NAME_OR_ARN or set "+EnvRole
		} else if ValidRoleARN(r) {
			roleItem.OK, roleItem.Detail = true, fmt.Sprintf("%s (from %s)", r, src)
		} else {
			roleItem.Detail, roleItem.Fix = fmt.Sprintf("role name %q from %s needs credentials to resolve", r, src), "fix credentials first"
		}
	default:
		if arn, err := c.ResolveRole(ctx, role); err != nil {
			roleItem.Detail, roleItem.Fix = err.Error(), "pass --role NAME_OR_ARN (a SageMaker execution role), set "+EnvRole+", or SageMaker.TrainingJob.RoleArn in ~/.config/sagemaker/config.yaml"
		} else {
			roleItem = c.checkRoleExists(ctx, arn, c.roleSource(role))
		}
	}
	items = append(items, roleItem)
	return items
}

// checkRoleExists asks IAM whether the resolved role exists. Credentials
// that may not call iam:GetRole leave it "not verified", which is not a
// failure: SageMaker itself will say at create time.
func (c *Client) checkRoleExists(ctx context.Context, arn, source string) CheckItem {
	it := CheckItem{Name: "role", OK: true}
	got, err := c.GetRole(ctx, arn)
	switch {
	case err == nil:
		it.Detail = fmt.Sprintf("%s (%s; exists)", got, source)
	case errors.Is(err, ErrNoSuchRole):
		it.OK = false
		it.Detail = fmt.Sprintf("%s (%s) does not exist: IAM answered NoSuchEntity", arn, source)
		it.Fix = "create the SageMaker execution role in IAM, or pass --role NAME_OR_ARN / set " + EnvRole + " to one that exists"
	case errors.Is(err, ErrIAMDenied):
		it.Detail = fmt.Sprintf("%s (%s; not verified: these credentials may not call iam:GetRole)", arn, source)
	default:
		it.Detail = fmt.Sprintf("%s (%s; not verified: %v)", arn, source, err)
	}
	return it
}

// roleSource says where the role Check resolves comes from.
func (c *Client) roleSource(given string) string {
	if strings.TrimSpace(given) != "" {
		return "configured"
	}
	if _, src, err := c.DefaultRole(); err == nil {
		return "from " + src
	}
	return "default"
}

// CredentialSource names where credentials came from, in a user's words,
// from the SDK provider's Source.
func CredentialSource(src string) string {
	switch {
	case src == "":
		return "an unnamed provider"
	case strings.HasPrefix(src, "EnvConfigCredentials"):
		return "the environment (AWS_ACCESS_KEY_ID)"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		return "the shared credentials file (" + strings.TrimSpace(strings.TrimPrefix(src, "SharedConfigCredentials:")) + ")"
	case strings.HasPrefix(src, "EC2RoleProvider"):
		return "the EC2 instance role (IMDS)"
	case strings.HasPrefix(src, "EndpointCredentialsProvider"), strings.Contains(src, "ECS"):
		return "the container credentials endpoint (ECS/EKS)"
	case strings.HasPrefix(src, "SSOProvider"):
		return "AWS SSO (aws sso login)"
	case strings.HasPrefix(src, "WebIdentityCredentials"):
		return "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"
	case strings.HasPrefix(src, "AssumeRoleProvider"):
		return "an assumed role (the profile's role_arn)"
	case strings.HasPrefix(src, "ProcessProvider"):
		return "the profile's credential_process"
	}
	return src
}
