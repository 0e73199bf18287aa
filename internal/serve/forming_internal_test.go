package serve

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// serve waits for a NATS cluster whose peers are still joining (placement
// fails, no leader yet) and gives up at once on anything else.
func TestSetupWaitsOnlyForAFormingCluster(t *testing.T) {
	for _, c := range []struct {
		err  error
		wait bool
	}{
		{fmt.Errorf("events: bucket rh_intake: %w", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}), true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{fmt.Errorf("events: stream RH_EVENTS: %w", jetstream.ErrNoStreamResponse), true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{&jetstream.APIError{Code: 400, ErrorCode: 10074, Description: "replicas > 1 not supported in non-clustered mode"}, false},
		{errors.New("events: something else"), false},
	} {
		if got := clusterForming(c.err); got != c.wait {
			t.Errorf("clusterForming(%v) = %v, want %v", c.err, got, c.wait)
		}
	}
}
