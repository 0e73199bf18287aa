package skyworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// launchRecord is the value of a cluster's key in rh_sky_requests. One key per
// cluster (not per generation) keeps the bucket bounded by the number of
// clusters, and lets a teardown find the launch in flight whatever
// generation started it; the generation inside tells a resumed create whether
// the record is its own.
type launchRecord struct {
	Generation int64     `json:"generation"`
	SkyName    string    `json:"sky_name"`
	State      string    `json:"state"`
	RequestID  string    `json:"request_id,omitempty"`
	At         time.Time `json:"at"`
}

func launchKey(cluster string) string { return "launch." + cluster }

// loadLaunch returns the cluster's record and its revision (nil, 0 when none).
func (s *Service) loadLaunch(ctx context.Context, cluster string) (*launchRecord, uint64, error) {
	e, err := s.launches.Get(ctx, launchKey(cluster))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("skyworker: read launch record of %s: %w", cluster, err)
	}
	var rec launchRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("skyworker: decode launch record of %s: %w", cluster, err)
	}
	return &rec, e.Revision(), nil
}

// saveLaunch writes rec with compare-and-set against rev (0: must not exist),
// so two workers holding the same event after a lease expiry cannot both
// claim the launch.
func (s *Service) saveLaunch(ctx context.Context, cluster string, rec launchRecord, rev uint64) (uint64, error) {
	rec.At = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("skyworker: encode launch record: %w", err)
	}
	if rev == 0 {
		rev, err = s.launches.Create(ctx, launchKey(cluster), b)
	} else {
		rev, err = s.launches.Update(ctx, launchKey(cluster), b, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("skyworker: write launch record of %s: %w", cluster, err)
	}
	return rev, nil
}

func (s *Service) deleteLaunch(ctx context.Context, cluster string) error {
	if err := s.launches.Purge(ctx, launchKey(cluster)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("skyworker: delete launch record of %s: %w", cluster, err)
	}
	return nil
}

// inflightLaunches lists the unfinished sky.launch requests for a SkyPilot
// cluster name: the recovery for a launch submitted by a worker that died
// before recording its id.
func (s *Service) inflightLaunches(ctx context.Context, skyName string) ([]string, error) {
	reqs, err := s.sky.RequestStatuses(ctx)
	s.m.apiError("api_status", err)
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
