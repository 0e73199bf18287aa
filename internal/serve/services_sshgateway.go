package serve

import (
	"context"

	"github.com/rhq/rh/services/sshgateway"
)

func init() {
	Register("sshgateway", func(ctx context.Context, d Deps) (Service, error) {
		return sshgateway.Start(ctx, d.NC, sshgateway.Config{Logger: d.Logger, Registry: d.Registry, Auth: d.Auth})
	})
}
