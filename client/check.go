package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// ErrNoWorker means no worker of the asked kind is running: nothing answers
// its check endpoint.
var ErrNoWorker = errors.New("no worker of this kind is running")

// Check asks the worker of kind (ondemand, sagemaker) what it sees from
// where it runs: its region, credentials and role, or its SkyPilot API
// server and clouds. With no such worker running the error matches
// ErrNoWorker (and rh.ErrUnavailable).
func (c *Client) Check(ctx context.Context, kind rh.Kind) (*api.CheckReply, error) {
	var rep api.CheckReply
	if err := c.Call(ctx, api.CheckSubject(kind), api.CheckRequest{}, &rep); err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, &rh.Error{Code: rh.EUNAVAILABLE, Err: ErrNoWorker,
				Message: fmt.Sprintf("no %s worker is running on %s (nothing answers %s): start one with `rhcli serve`", kind, c.url, api.CheckSubject(kind))}
		}
		return nil, err
	}
	return &rep, nil
}
