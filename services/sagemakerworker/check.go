package sagemakerworker

import (
	"context"

	"github.com/rhq/rh/api"
)

// checkItems is what this worker sees of AWS from where it runs: its
// credentials and their source, its region, and the role a cluster naming
// none would use, with whether IAM knows it. Clusters naming another profile
// or region get clients of their own; the check reports the default one.
func (s *Service) checkItems(ctx context.Context) []api.CheckItem {
	var out []api.CheckItem
	for _, it := range s.sm.Check(ctx, s.cfg.DefaultRole) {
		out = append(out, api.CheckItem{Name: it.Name, OK: it.OK, Detail: it.Detail, Fix: it.Fix})
	}
	return out
}
