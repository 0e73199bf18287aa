package sm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// signedRequest is one AWS call as this package makes them, SageMaker's
// JSON 1.1 and IAM's Query protocol alike: a POST of body to endpoint,
// signed with SigV4 for service in region.
type signedRequest struct {
	service, region, endpoint string
	header                    http.Header
	body                      []byte
}

// post sends r with credentials from creds and returns the answer read
// whole (at most maxResponse bytes). No answer at all (the request could
// not be sent, or its answer not read) is a *SendError; a cancelled ctx an
// aws.RequestCanceledError.
func (r signedRequest) post(ctx context.Context, hc aws.HTTPClient, creds aws.CredentialsProvider) (*http.Response, []byte, error) {
	if creds == nil {
		return nil, nil, fmt.Errorf("no AWS credentials provider configured")
	}
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to retrieve credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(r.body))
	if err != nil {
		return nil, nil, fmt.Errorf("building request: %w", err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	sum := sha256.Sum256(r.body)
	if err := v4.NewSigner().SignHTTP(ctx, c, req, hex.EncodeToString(sum[:]), r.service, r.region, time.Now().UTC()); err != nil {
		return nil, nil, fmt.Errorf("signing request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, &aws.RequestCanceledError{Err: err}
		}
		return nil, nil, &SendError{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, nil, &SendError{Err: fmt.Errorf("reading response: %w", err)}
	}
	return resp, b, nil
}
