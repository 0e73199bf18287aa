package serve

import (
	"context"

	"github.com/rhq/rh/services/registry"
)

func init() {
	Register("registry", func(ctx context.Context, d Deps) (Service, error) {
		return registry.Start(ctx, d.NC, registry.Config{Logger: d.Logger, Registry: d.Registry, ReconcileEvery: d.Opts.ReconcileEvery, Auth: d.Auth})
	})
}
