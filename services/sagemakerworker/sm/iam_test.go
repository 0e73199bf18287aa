package sm

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rhq/rh/internal/sagemakersim"
)

func iamClient(t *testing.T, opts sagemakersim.Options) *Client {
	t.Helper()
	sim := sagemakersim.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(func() { ts.Close(); sim.Close() })
	return NewClient(aws.Config{Region: "eu-west-1", Retryer: fastRetryer,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")},
		Options{STSEndpoint: ts.URL, IAMEndpoint: ts.URL, SageMakerConfigPaths: []string{}})
}

func roleItem(items []CheckItem) CheckItem {
	for _, it := range items {
		if it.Name == "role" {
			return it
		}
	}
	return CheckItem{}
}

// TestGetRoleOverTheQueryProtocol: the hand-written GetRole finds a role
// (by the name in its ARN, path dropped), tells a missing one from one the
// credentials may not look up, and Check reports each as a user needs it.
func TestGetRoleOverTheQueryProtocol(t *testing.T) {
	ctx := context.Background()
	c := iamClient(t, sagemakersim.Options{Roles: []string{"SageMakerRole"}})
	arn, err := c.GetRole(ctx, "arn:aws:iam::123456789012:role/service-role/SageMakerRole")
	if err != nil || arn != "arn:aws:iam::123456789012:role/SageMakerRole" {
		t.Fatalf("GetRole = %q, %v", arn, err)
	}
	if it := roleItem(c.Check(ctx, "SageMakerRole")); !it.OK || !strings.Contains(it.Detail, "exists") {
		t.Errorf("existing role: %+v", it)
	}

	_, err = c.GetRole(ctx, "arn:aws:iam::123456789012:role/Nope")
	var ie *IAMError
	if !errors.Is(err, ErrNoSuchRole) || !errors.As(err, &ie) || ie.Status != 404 || !strings.Contains(ie.Message, "Nope") {
		t.Fatalf("missing role: %v", err)
	}
	if it := roleItem(c.Check(ctx, "Nope")); it.OK || !strings.Contains(it.Detail, "does not exist") || it.Fix == "" {
		t.Errorf("missing role: %+v", it)
	}

	denied := iamClient(t, sagemakersim.Options{IAMDenied: true})
	if _, err := denied.GetRole(ctx, "arn:aws:iam::123456789012:role/SageMakerRole"); !errors.Is(err, ErrIAMDenied) {
		t.Fatalf("denied: %v", err)
	}
	if it := roleItem(denied.Check(ctx, "SageMakerRole")); !it.OK || !strings.Contains(it.Detail, "not verified") {
		t.Errorf("denied: %+v", it)
	}

	if _, err := c.GetRole(ctx, "arn:aws:iam::123456789012:user/bob"); err == nil {
		t.Error("a user ARN was taken for a role")
	}
}

// TestGetRoleIsSigned: an unsigned request is refused the way IAM does,
// so the simulator proves the client signs for service "iam".
func TestGetRoleIsSigned(t *testing.T) {
	c := iamClient(t, sagemakersim.Options{})
	c.cfg.Credentials = aws.AnonymousCredentials{}
	if _, err := c.GetRole(context.Background(), "arn:aws:iam::123456789012:role/R"); err == nil {
		t.Fatal("anonymous GetRole succeeded")
	}
}
