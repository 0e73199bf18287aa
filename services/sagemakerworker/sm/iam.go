package sm

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// IAM's one call rh makes, GetRole, written by hand against the IAM Query
// protocol (a form POST, SigV4 for service "iam", XML answers) rather than
// through aws-sdk-go-v2/service/iam, whose packages would add to every
// rhcli command's start-up.

// Errors of GetRole, matchable with errors.Is.
var (
	// ErrNoSuchRole: IAM answered NoSuchEntity, the role does not exist.
	ErrNoSuchRole = errors.New("sm: no such IAM role")
	// ErrIAMDenied: the credentials may not call iam:GetRole, so whether
	// the role exists cannot be verified from here.
	ErrIAMDenied = errors.New("sm: iam:GetRole not allowed")
)

// IAMError is an error answer of IAM.
type IAMError struct {
	Status  int
	Code    string // NoSuchEntity, AccessDenied, ...
	Message string
}

func (e *IAMError) Error() string {
	return fmt.Sprintf("IAM GetRole: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Is makes NoSuchEntity match ErrNoSuchRole and AccessDenied ErrIAMDenied.
func (e *IAMError) Is(target error) bool {
	switch target {
	case ErrNoSuchRole:
		return e.Code == "NoSuchEntity"
	case ErrIAMDenied:
		return e.Code == "AccessDenied" || e.Code == "AccessDeniedException"
	}
	return false
}

// iamEndpoint is IAM's global endpoint and signing region for an ARN's
// partition.
func iamEndpoint(partition string) (endpoint, region string) {
	switch partition {
	case "aws-cn":
		return "https://iam.cn-north-1.amazonaws.com.cn/", "cn-north-1"
	case "aws-us-gov":
		return "https://iam.us-gov.amazonaws.com/", "us-gov-west-1"
	}
	return "https://iam.amazonaws.com/", "us-east-1"
}

// GetRole asks IAM whether the role of roleARN exists and returns its ARN
// as IAM knows it. A missing role is ErrNoSuchRole, a caller without
// iam:GetRole ErrIAMDenied (both through *IAMError).
func (c *Client) GetRole(ctx context.Context, roleARN string) (string, error) {
	parts := strings.SplitN(roleARN, ":", 6)
	if len(parts) != 6 || !strings.HasPrefix(parts[5], "role/") {
		return "", fmt.Errorf("sm: %q is not an IAM role ARN", roleARN)
	}
	name := parts[5][strings.LastIndex(parts[5], "/")+1:] // GetRole takes the name without its path
	endpoint, region := iamEndpoint(parts[1])
	switch {
	case c.opts.IAMEndpoint != "":
		endpoint = c.opts.IAMEndpoint
	case c.cfg.BaseEndpoint != nil && *c.cfg.BaseEndpoint != "":
		endpoint = *c.cfg.BaseEndpoint
	}
	var hc aws.HTTPClient = http.DefaultClient
	if c.cfg.HTTPClient != nil {
		hc = c.cfg.HTTPClient
	}
	body := url.Values{"Action": {"GetRole"}, "RoleName": {name}, "Version": {"2010-05-08"}}.Encode()
	resp, b, err := signedRequest{service: "iam", region: region, endpoint: endpoint, body: []byte(body),
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}},
	}.post(ctx, hc, c.cfg.Credentials)
	if err != nil {
		return "", fmt.Errorf("sm: IAM GetRole: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `xml:"Code"`
				Message string `xml:"Message"`
			} `xml:"Error"`
		}
		if xml.NewDecoder(bytes.NewReader(b)).Decode(&e) != nil || e.Error.Code == "" {
			return "", &IAMError{Status: resp.StatusCode, Code: "Unknown", Message: snippetOf(b)}
		}
		return "", &IAMError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	var out struct {
		Result struct {
			Role struct {
				Arn string `xml:"Arn"`
			} `xml:"Role"`
		} `xml:"GetRoleResult"`
	}
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&out); err != nil || out.Result.Role.Arn == "" {
		return "", fmt.Errorf("sm: IAM GetRole: unreadable answer: %s", snippetOf(b))
	}
	return out.Result.Role.Arn, nil
}

func snippetOf(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
