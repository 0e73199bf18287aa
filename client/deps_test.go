package client_test

import (
	"testing"

	"github.com/rhq/rh/internal/testkit"
)

// A program using the SDK pays the package initialisation of everything
// the SDK links: the server side (nats-server, the Prometheus client, the
// AWS SDK) must stay out of it.
func TestSDKLinksNoServicePackages(t *testing.T) {
	testkit.NoLinkedPackages(t, "github.com/nats-io/nats-server", "github.com/prometheus", "github.com/aws")
}
