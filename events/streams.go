package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
)

// Streams and buckets. Every one has explicit limits: JetStream's defaults are
// unbounded, and an embedded server would otherwise reserve most of the disk.
const (
	StreamEvents = "RH_EVENTS" // lifecycle intents: rh.cluster.{create,teardown,update,refresh}.<kind>
	StreamState  = "RH_STATE"  // worker reports: rh.cluster.state.<kind>.<name>
	StreamDLQ    = "RH_DLQ"    // dead letters: rh.dlq.<stream>.<consumer>

	BucketClusters = "rh_clusters" // cluster records, written only by the registry
	BucketSecrets  = "rh_secrets"  // SSH keys and passwords (internal/secrets): written by the registry and the workers, read by the sshgateway (and the sagemakerworker, its own)
	BucketHostKeys = "rh_hostkeys" // host keys recorded on first contact
	BucketUsers    = "rh_users"    // people allowed on the bus: name, role, nkey (public)

	// The cloud workers' records of what they asked their cloud for.
	BucketSkyRequests = "rh_sky_requests" // skyworker: the SkyPilot launch request of each cluster
	BucketSMJobs      = "rh_sm_jobs"      // sagemakerworker: the training job of each cluster
)

// DuplicateWindow is how long a repeated event id is dropped. Intent ids are
// deterministic, so a registry retry inside it publishes nothing twice, and
// workers are idempotent for repeats after it.
const DuplicateWindow = 10 * time.Minute

// IntakeMemory is how long the registry remembers an applied request's id:
// a request published again within it changes nothing.
const IntakeMemory = 30 * 24 * time.Hour

// Headers added to dead letters.
const (
	HeaderDLQReason   = "Rh-Dlq-Reason"
	HeaderDLQStream   = "Rh-Dlq-Stream"
	HeaderDLQSubject  = "Rh-Dlq-Subject"
	HeaderDLQConsumer = "Rh-Dlq-Consumer"
	HeaderDLQSeq      = "Rh-Dlq-Sequence"
)

// ClusterKey is the KV key of a cluster's record and secrets.
func ClusterKey(name string) string { return "cluster." + name }

// Limits size the streams and buckets; Replicas > 1 needs a NATS cluster.
type Limits struct {
	Replicas int
	// KeepHigherReplicas leaves a stream or bucket that has more replicas than
	// Replicas as it is: a default never lowers what an operator raised.
	KeepHigherReplicas bool
	EventsBytes        int64
	StateBytes         int64
	MaxAge             time.Duration
}

// DefaultLimits suit one machine.
func DefaultLimits() Limits {
	return Limits{Replicas: 1, EventsBytes: 256 << 20, StateBytes: 256 << 20, MaxAge: 7 * 24 * time.Hour}
}

// StreamConfigs returns the stream definitions.
func StreamConfigs(l Limits) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "rh cluster lifecycle intents for the workers",
			Subjects:    []string{SubjectPrefix + OpCreate + ".*", SubjectPrefix + OpTeardown + ".*", SubjectPrefix + OpUpdate + ".*", SubjectPrefix + OpRefresh + ".*"},
			Retention:   jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			MaxAge: l.MaxAge, MaxBytes: l.EventsBytes, MaxMsgSize: 1 << 20, Duplicates: DuplicateWindow,
			Discard: jetstream.DiscardOld,
		},
		{
			Name:        StreamState,
			Description: "rh worker state reports for the registry",
			Subjects:    []string{StateSubjectPrefix + "*.*"},
			Retention:   jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			MaxAge: l.MaxAge, MaxBytes: l.StateBytes, MaxMsgSize: 1 << 20, Duplicates: DuplicateWindow,
			Discard: jetstream.DiscardOld,
		},
		{
			// Requests from systems that speak only events, captured from
			// the users' service import so none is lost while no registry
			// runs. Small messages: a request carries a spec, never files.
			Name:        StreamIntake,
			Description: "rh cluster requests from event publishers, applied by the registry",
			Subjects:    []string{IntakeSubjectPrefix + "*"},
			Retention:   jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			MaxAge: l.MaxAge, MaxBytes: 64 << 20, MaxMsgSize: 64 << 10, Duplicates: DuplicateWindow,
			Discard: jetstream.DiscardOld,
		},
		{
			Name:        StreamDLQ,
			Description: "rh events that could not be processed, with the reason",
			Subjects:    []string{DLQSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: l.Replicas,
			MaxAge: 30 * 24 * time.Hour, MaxBytes: 64 << 20, MaxMsgSize: 1 << 20, Duplicates: DuplicateWindow,
			Discard: jetstream.DiscardOld,
		},
	}
}

// BucketConfigs returns the KV definitions.
func BucketConfigs(l Limits) []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{Bucket: BucketClusters, Description: "rh cluster records", History: 5, MaxBytes: 128 << 20, MaxValueSize: 1 << 20, Storage: jetstream.FileStorage, Replicas: l.Replicas},
		{Bucket: BucketSecrets, Description: "rh cluster secrets", History: 1, MaxBytes: 16 << 20, MaxValueSize: 64 << 10, Storage: jetstream.FileStorage, Replicas: l.Replicas},
		{Bucket: BucketHostKeys, Description: "rh node host keys (trust on first use)", History: 5, MaxBytes: 16 << 20, MaxValueSize: 16 << 10, Storage: jetstream.FileStorage, Replicas: l.Replicas},
		{Bucket: BucketUsers, Description: "rh users: name, role and public nkey", History: 5, MaxBytes: 16 << 20, MaxValueSize: 16 << 10, Storage: jetstream.FileStorage, Replicas: l.Replicas},
		// One key per (publisher, request id): what was applied and answered.
		{Bucket: BucketIntake, Description: "rh intake: requests applied, by publisher and event id", History: 1, MaxBytes: 64 << 20, MaxValueSize: 16 << 10,
			TTL: IntakeMemory, Storage: jetstream.FileStorage, Replicas: l.Replicas},
		workerBucket(BucketSkyRequests, "rh skyworker: SkyPilot launch request of each cluster", l),
		workerBucket(BucketSMJobs, "rh sagemakerworker: training job of each cluster", l),
	}
}

func workerBucket(name, desc string, l Limits) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, MaxBytes: 16 << 20, MaxValueSize: 4 << 10,
		TTL: 30 * 24 * time.Hour, Storage: jetstream.FileStorage, Replicas: l.Replicas}
}

// Setup creates or updates every stream and bucket. Only `rhcli serve` (and
// test servers) call it: it is the one owner of their limits and replicas;
// services only bind (Check). With KeepHigherReplicas a stream an operator
// raised keeps its replicas; JetStream changes replicas in place.
func Setup(ctx context.Context, js jetstream.JetStream, l Limits) error {
	for _, cfg := range StreamConfigs(l) {
		cfg.Replicas = keptReplicas(ctx, js, cfg.Name, l)
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("events: stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range BucketConfigs(l) {
		cfg.Replicas = keptReplicas(ctx, js, "KV_"+cfg.Bucket, l)
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("events: bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

func keptReplicas(ctx context.Context, js jetstream.JetStream, stream string, l Limits) int {
	want := max(l.Replicas, 1)
	if !l.KeepHigherReplicas {
		return want
	}
	if st, err := js.Stream(ctx, stream); err == nil {
		if have := st.CachedInfo().Config.Replicas; have > want {
			return have
		}
	}
	return want
}

// ErrNotSetUp is matched when a stream or bucket a service needs is missing.
var ErrNotSetUp = errors.New("events: rh's streams and buckets are not set up on this NATS")

// Check verifies that every stream and bucket exists. Services call it
// instead of creating them, so no service starting up changes what the
// operator set.
func Check(ctx context.Context, js jetstream.JetStream) error {
	var missing []string
	for _, cfg := range StreamConfigs(DefaultLimits()) {
		if _, err := js.Stream(ctx, cfg.Name); err != nil {
			if !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("events: stream %s: %w", cfg.Name, err)
			}
			missing = append(missing, cfg.Name)
		}
	}
	for _, cfg := range BucketConfigs(DefaultLimits()) {
		if _, err := js.KeyValue(ctx, cfg.Bucket); err != nil {
			if !errors.Is(err, jetstream.ErrBucketNotFound) {
				return fmt.Errorf("events: bucket %s: %w", cfg.Bucket, err)
			}
			missing = append(missing, cfg.Bucket)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s (`rhcli serve` sets them up when it starts)", ErrNotSetUp, strings.Join(missing, ", "))
	}
	return nil
}

// UsersBucket binds the users bucket.
func UsersBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, BucketUsers)
	if err != nil {
		return nil, fmt.Errorf("events: bucket %s: %w", BucketUsers, err)
	}
	return kv, nil
}

// IsCASConflict reports whether a KV write lost a compare-and-set race. Single
// replica buckets may report a stale update as "key exists".
func IsCASConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// LoadCluster reads a cluster's record and its revision from the records
// bucket. A missing record is an rh not-found error.
func LoadCluster(ctx context.Context, records jetstream.KeyValue, name string) (*rh.Cluster, uint64, error) {
	e, err := records.Get(ctx, ClusterKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, rh.NotFound("cluster %q not found", name)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("events: read record of %s: %w", name, err)
	}
	var c rh.Cluster
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, 0, fmt.Errorf("events: decode record of %s: %w", name, err)
	}
	return &c, e.Revision(), nil
}
