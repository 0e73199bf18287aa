package skyworker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// checkItems is what this worker sees of SkyPilot from where it runs: does
// its API server answer, with which version, which clouds it can use and why
// the others are off (the check request's own log says).
func (s *Service) checkItems(ctx context.Context) []api.CheckItem {
	endpoint := s.sky.Endpoint()
	item := api.CheckItem{Name: "api server"}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	h, err := s.sky.Health(hctx)
	cancel()
	if err != nil {
		item.Detail = err.Error()
		item.Fix = "start one with `sky api start` (pip install skypilot) where the skyworker runs, or set " + skypilot.EnvEndpoint + " in the skyworker's environment to your team's server"
		switch {
		case errors.Is(err, skypilot.ErrUnauthorized):
			item.Fix = "set " + skypilot.EnvToken + " in the skyworker's environment to a service-account token (sky_...) for " + endpoint
		case errors.Is(err, skypilot.ErrVersionMismatch):
			item.Fix = "upgrade the SkyPilot API server at " + endpoint + " (`pip install -U skypilot && sky api stop && sky api start`) or point " + skypilot.EnvEndpoint + " at a compatible one"
		}
		return []api.CheckItem{item}
	}
	item.OK = true
	item.Detail = fmt.Sprintf("SkyPilot %s (API version %d, commit %s) at %s", h.Version, h.APIVersion, h.Commit, endpoint)
	return append([]api.CheckItem{item}, s.checkClouds(ctx)...)
}

// checkClouds re-runs SkyPilot's credential check, as `sky check` does, so
// credentials configured since the server started count; each disabled
// cloud is an optional item with SkyPilot's reason.
func (s *Service) checkClouds(ctx context.Context) []api.CheckItem {
	item := api.CheckItem{Name: "clouds"}
	cc, err := s.sky.CheckClouds(ctx)
	if cc == nil {
		// A server that cannot re-run the check may still say what it has.
		enabled, eerr := s.sky.EnabledClouds(ctx)
		if eerr != nil {
			item.Detail, item.Fix = err.Error(), "run `sky check -v` on the API server's machine"
			return []api.CheckItem{item}
		}
		cc = &skypilot.CloudCheck{Enabled: enabled}
	}
	if len(cc.Enabled) == 0 {
		item.Detail = "no cloud is enabled"
		item.Fix = "configure a cloud's credentials where the API server runs (`aws configure`, `gcloud auth application-default login`, `az login`, a kubeconfig), then `sky check`"
	} else {
		item.OK, item.Detail = true, "enabled: "+strings.Join(cc.Enabled, ", ")
	}
	items := []api.CheckItem{item}
	if err != nil {
		// The verdict stands; only the reasons are missing.
		items[0].Detail += " (why others are off is unknown: " + err.Error() + ")"
	}
	for _, cloud := range slices.Sorted(maps.Keys(cc.Disabled)) {
		reason := cc.Disabled[cloud]
		if reason == "" {
			reason = "disabled (SkyPilot gave no reason)"
		}
		items = append(items, api.CheckItem{Name: "cloud " + cloud, Optional: true, Detail: "disabled: " + reason,
			Fix: "follow SkyPilot's hint where the API server runs, then `sky check " + strings.ToLower(cloud) + "`"})
	}
	return items
}
