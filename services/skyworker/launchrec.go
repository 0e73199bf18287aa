package skyworker

import (
	"context"

	"github.com/rhq/rh/internal/worker"
)

// Launch record states.
const (
	// statePending: this generation's create started; a launch may have been
	// submitted without its id being recorded (a crash in between).
	statePending = "pending"
	// stateSubmitted: the launch with RequestID is (or was) running.
	stateSubmitted = "submitted"
	// stateUp: the launch succeeded and the cluster was reported Up.
	stateUp = "up"
)

// launchRecord is the value of a cluster's key in rh_sky_requests. The
// generation inside tells a resumed create whether the record is its own; a
// teardown finds the launch in flight whatever generation started it.
type launchRecord struct {
	Generation int64  `json:"generation"`
	SkyName    string `json:"sky_name"`
	State      string `json:"state"`
	RequestID  string `json:"request_id,omitempty"`
	worker.Stamp
}

// inflightLaunches lists the unfinished sky.launch requests for a SkyPilot
// cluster name: the recovery for a launch submitted by a worker that died
// before recording its id.
func (s *Service) inflightLaunches(ctx context.Context, skyName string) ([]string, error) {
	reqs, err := s.sky.RequestStatuses(ctx)
	s.m.APIError("api_status", err)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range reqs {
		if r.Name == "sky.launch" && r.ClusterName == skyName && !r.Status.Terminal() {
			ids = append(ids, r.RequestID)
		}
	}
	return ids, nil
}

// isStopping reports whether ctx ended because of a teardown or a Stop, not
// because of the work itself.
func isStopping(ctx context.Context) bool { return ctx.Err() != nil }
