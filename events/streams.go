package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// DuplicateWindow is how long a repeated event id is dropped. Intent ids are
// deterministic, so a registry retry inside it publishes nothing twice, and
// workers are idempotent for repeats after it.
const DuplicateWindow = 10 * time.Minute

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
	Replicas    int
	EventsBytes int64
	StateBytes  int64
	MaxAge      time.Duration
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
	}
}

// Setup creates or updates every stream and bucket. It is idempotent: each
// service calls it at start-up, whichever starts first.
func Setup(ctx context.Context, js jetstream.JetStream, l Limits) error {
	for _, cfg := range StreamConfigs(l) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("events: stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range BucketConfigs(l) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("events: bucket %s: %w", cfg.Bucket, err)
		}
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
