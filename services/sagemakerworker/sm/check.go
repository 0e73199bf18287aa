package sm

import (
	"context"
	"fmt"
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
		items = append(items, CheckItem{Name: "credentials", OK: true, Detail: "from " + creds.Source})
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
			roleItem.OK, roleItem.Detail = true, arn
		}
	}
	items = append(items, roleItem)
	return items
}
