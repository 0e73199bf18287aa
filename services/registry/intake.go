package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/svc"
)

// Event intake: requests that systems speaking only events publish to
// rh.intake.<their nkey> reach the stream RH_INTAKE through the users'
// service import; permissions let each user publish only to its own key's
// subject, so the subject names the publisher (JetStream drops the server's
// Nats-Request-Info stamp from what it stores). The registry applies
// each through the same code as the API (Create, Up, Teardown, Delete, with
// the publisher as the caller), once per (publisher, event id): a claim in
// KV rh_intake decides, beyond the stream's duplicate window. It answers on
// rh.outcome.<publisher key>.<cluster> — accepted or refused, then each
// change of the cluster until it settles.

const intakeConsumer = "registry-intake"

// intakeFollowFor bounds how long the registry reports a request's cluster
// changes: longer than any launch, shorter than forever.
const intakeFollowFor = 6 * time.Hour

// Intake record states.
const (
	intakeApplying = "applying" // claimed; the effect may or may not have happened
	intakeAnswered = "answered" // applied or refused; Outcome holds the answer
)

// intakeRecord is the value of one request's key in rh_intake.
type intakeRecord struct {
	ID        string          `json:"id"`
	User      string          `json:"user"`
	Op        string          `json:"op"`
	Cluster   string          `json:"cluster"`
	State     string          `json:"state"`
	ClaimedAt time.Time       `json:"claimed_at"`
	Outcome   *events.Outcome `json:"outcome,omitempty"`
	// Digest is a hash of the whole request (spec and flags included): the
	// same id with another request is refused, not taken for a repeat.
	Digest string `json:"digest,omitempty"`
}

// requestDigest hashes a decoded request; encoding/json writes struct
// fields in order and map keys sorted, so equal requests hash alike.
func requestDigest(req *events.ClusterRequest) string {
	b, _ := json.Marshal(req)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// intakeKey is a request's key: the publisher's token and a hash of the
// event id, which may hold any character.
func intakeKey(publisher, id string) string { return "req." + publisher + "." + idHash(id) }

// followKey marks a request whose cluster's changes are being reported.
func followKey(publisher, id string) string { return "follow." + publisher + "." + idHash(id) }

func idHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

// intakeFollow is the value of a request's follow key while its cluster's
// changes are reported: a registry that starts takes the reporting over
// where the last one stopped.
type intakeFollow struct {
	Publisher   string         `json:"publisher"`
	Last        events.Outcome `json:"last"` // the last outcome sent
	Seq         int            `json:"seq"`  // its sequence number
	Incarnation int64          `json:"incarnation"`
	Until       time.Time      `json:"until"`
	// Owner is the registry process reporting the request's changes, and
	// Beat when it last said it still does (every followBeat). A follow
	// whose owner stopped beating, or released it on stopping, is taken
	// over by another registry's next reconcile pass (adoptFollows).
	Owner string    `json:"owner,omitempty"`
	Beat  time.Time `json:"beat,omitempty"`
}

// followBeat is how often a follow's owner says it is alive; after
// followStale without a beat another registry takes the follow over.
// Beats are judged by whether the follow's key changes, on the observer's
// own clock; a beat's time, written by another host's clock, counts only
// when older than followSkew on top of followStale could make it.
const (
	followBeat  = 5 * time.Second
	followStale = 3 * followBeat
	followSkew  = 30 * time.Second
)

// followSighting is when this registry first saw a follow's key at a
// revision: an owner that beats moves it every followBeat.
type followSighting struct {
	rev uint64
	at  time.Time
}

// Intake outcomes counted by rh_registry_intake_total.
var intakeOutcomes = []string{events.OutcomeAccepted, events.OutcomeRefused, "duplicate", "dead_lettered", "retried"}

type intakeMetrics struct{ requests *prometheus.CounterVec }

func newIntakeMetrics(reg prometheus.Registerer, dead *prometheus.CounterVec) *intakeMetrics {
	m := &intakeMetrics{requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "rh_registry_intake_total",
		Help: "Intake requests handled, by op (create, up, teardown, delete, unknown) and outcome (accepted, refused, duplicate, dead_lettered, retried).",
	}, []string{"op", "outcome"})}
	for _, op := range append(slices.Clone(events.RequestOps), "unknown") {
		for _, o := range intakeOutcomes {
			m.requests.WithLabelValues(op, o)
		}
	}
	for _, c := range []string{svc.DeadMalformed, svc.DeadRefused} {
		dead.WithLabelValues(events.StreamIntake, intakeConsumer, c)
	}
	return m
}

func (s *Service) startIntake(ctx context.Context) error {
	kv, err := s.js.KeyValue(ctx, events.BucketIntake)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	s.intake = kv
	s.im = newIntakeMetrics(s.cfg.Registry, s.m.deadLetters)
	cons, err := s.js.CreateOrUpdateConsumer(ctx, events.StreamIntake, jetstream.ConsumerConfig{
		Durable:       intakeConsumer,
		Description:   "rh registry applies requests from event publishers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    intakeMaxDeliver,
		MaxAckPending: 64,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("registry: intake consumer: %w", err)
	}
	// One request at a time, in publication order: a create and the
	// teardown published right after it apply in that order.
	cc, err := cons.Consume(func(m jetstream.Msg) { s.onIntake(ctx, m) }, jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("registry: consume intake: %w", err)
	}
	s.wg.Go(func() {
		<-ctx.Done()
		cc.Drain()
		<-cc.Closed()
	})
	return s.adoptFollows(ctx)
}

// adoptFollows takes over the reporting of requests whose cluster was
// still changing when their registry stopped (it released them) or died (it
// stopped beating): at start, and at every reconcile pass, so a replica
// that dies does not leave its publishers unanswered. Taking one over is a
// compare-and-set on its key, which one registry wins; a follow whose
// owner is alive is left to it.
func (s *Service) adoptFollows(ctx context.Context) error {
	keys, err := s.intake.ListKeysFiltered(ctx, "follow.>")
	if err != nil {
		return fmt.Errorf("registry: intake follows: %w", err)
	}
	now := s.now()
	seen := map[string]followSighting{}
	defer func() {
		s.followsMu.Lock()
		s.followSeen = seen // keys gone since are forgotten
		s.followsMu.Unlock()
	}()
	for key := range keys.Keys() {
		if s.isFollowing(key) {
			continue
		}
		e, err := s.intake.Get(ctx, key)
		if err != nil {
			continue // done meanwhile
		}
		var f intakeFollow
		if err := json.Unmarshal(e.Value(), &f); err != nil {
			s.log.Warn("undecodable intake follow; dropping it", "key", key, "err", err)
			_ = s.intake.Delete(ctx, key)
			continue
		}
		if f.Owner != "" && f.Owner != s.instance && !s.followDead(key, e.Revision(), f.Beat, now, seen) {
			continue // its registry is alive and reporting
		}
		f.Owner, f.Beat = s.instance, now
		b, _ := json.Marshal(f)
		rev, err := s.intake.Update(ctx, key, b, e.Revision())
		if err != nil {
			continue // another registry took it first, or it ended
		}
		s.log.Info("reporting an intake request's changes again", "request_id", f.Last.RequestID, "cluster", f.Last.Cluster)
		s.startFollow(key, f, rev)
	}
	return nil
}

// followDead reports whether another registry's follow at revision rev has
// stopped beating: its key has not moved for followStale as this
// registry's clock measures, or its last beat is older than clocks that
// disagree by followSkew could make a live one. So a host whose clock runs
// ahead takes over no live follow, nor does one whose clock lags wait on a
// dead one. seen collects this pass's sightings.
func (s *Service) followDead(key string, rev uint64, beat, now time.Time, seen map[string]followSighting) bool {
	if now.Sub(beat) >= followStale+followSkew {
		return true
	}
	s.followsMu.Lock()
	last, ok := s.followSeen[key]
	s.followsMu.Unlock()
	if !ok || last.rev != rev {
		last = followSighting{rev: rev, at: now}
	}
	seen[key] = last
	return now.Sub(last.at) >= followStale
}

// startFollow reports a follow's changes under the service's own context
// (adoptFollows may run under a caller's).
func (s *Service) startFollow(key string, f intakeFollow, rev uint64) {
	s.followsMu.Lock()
	if s.following[key] {
		s.followsMu.Unlock()
		return
	}
	s.following[key] = true
	s.followsMu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.followsMu.Lock()
			delete(s.following, key)
			s.followsMu.Unlock()
		}()
		s.followIntake(s.runCtx, key, f, rev)
	})
}

func (s *Service) isFollowing(key string) bool {
	s.followsMu.Lock()
	defer s.followsMu.Unlock()
	return s.following[key]
}

const intakeMaxDeliver = 10

func (s *Service) onIntake(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	caller, publisher, err := s.cfg.Auth.Publisher(m.Subject())
	if err != nil {
		s.intakeDead(ctx, m, md, "unknown", svc.DeadRefused, "refused intake request: "+err.Error())
		return
	}
	env, req, err := events.DecodeRequest(m.Data())
	if err != nil {
		s.intakeDead(ctx, m, md, "unknown", svc.DeadMalformed, fmt.Sprintf("malformed intake request from %s: %v", caller.User, err))
		// Say so to the publisher too, when the event has an id to answer.
		if env.ID != "" && len(env.ID) <= events.MaxRequestIDLen {
			cluster := ""
			if rh.ValidateName(env.Subject) == nil {
				cluster = env.Subject
			}
			s.sendOutcome(publisher, 1, events.Outcome{RequestID: env.ID, Cluster: cluster, Result: events.OutcomeRefused,
				Code: rh.EINVALID, Reason: err.Error(), Done: true})
		}
		return
	}
	log := s.log.With("request_id", env.ID, "user", caller.User, "op", req.Op, "cluster", req.Cluster)
	key := intakeKey(publisher, env.ID)
	digest := requestDigest(req)
	rec, rev, fresh, err := s.claimIntake(ctx, key, intakeRecord{ID: env.ID, User: caller.User, Op: req.Op, Cluster: req.Cluster,
		State: intakeApplying, ClaimedAt: s.now().UTC(), Digest: digest})
	if err != nil {
		s.retryIntake(ctx, m, md, req.Op, log, err)
		return
	}
	if rec.Op != req.Op || rec.Cluster != req.Cluster || (rec.Digest != "" && rec.Digest != digest) {
		// The same id for a different request: the first one stands.
		reason := fmt.Sprintf("id %q was already used for %s of %s; use a new id for a new request", env.ID, rec.Op, rec.Cluster)
		if rec.Op == req.Op && rec.Cluster == req.Cluster {
			reason = fmt.Sprintf("id %q was already used for another %s of %s (the spec or options differ); use a new id for a new request", env.ID, rec.Op, rec.Cluster)
		}
		s.im.requests.WithLabelValues(req.Op, events.OutcomeRefused).Inc()
		s.sendOutcome(publisher, 1, events.Outcome{RequestID: env.ID, Op: req.Op, Cluster: req.Cluster, Result: events.OutcomeRefused,
			Code: rh.ECONFLICT, Reason: reason, Done: true, Duplicate: true})
		_ = m.DoubleAck(ctx)
		return
	}
	if rec.State == intakeAnswered && rec.Outcome != nil {
		// Seen before (a republication, or a redelivery after the answer
		// but before the ack): repeat the answer, change nothing. It is
		// done unless a follow still reports the cluster's changes.
		s.im.requests.WithLabelValues(req.Op, "duplicate").Inc()
		o := *rec.Outcome
		o.Duplicate = true
		if !o.Done {
			if _, err := s.intake.Get(ctx, followKey(publisher, env.ID)); errors.Is(err, jetstream.ErrKeyNotFound) {
				o.Done = true
			}
		}
		s.sendOutcome(publisher, 1, o)
		_ = m.DoubleAck(ctx)
		return
	}
	c, err := s.applyIntake(ctx, caller, req, rec, fresh)
	var out events.Outcome
	switch code := rh.ErrorCode(err); {
	case err == nil:
		out = events.Outcome{RequestID: env.ID, Op: req.Op, Cluster: req.Cluster, Result: events.OutcomeAccepted}
		if c != nil {
			out.Phase, out.Message, out.Generation = c.Status.Phase, c.Status.Message, c.Generation
		}
		out.Done = c == nil || settled(req.Op, c.Status.Phase)
	case code == rh.EINVALID || code == rh.ENOTFOUND || code == rh.ECONFLICT || code == rh.EFORBIDDEN:
		var e *rh.Error
		errors.As(err, &e)
		out = events.Outcome{RequestID: env.ID, Op: req.Op, Cluster: req.Cluster, Result: events.OutcomeRefused, Code: code, Reason: e.Message, Done: true}
		if e.Field != "" {
			out.Reason = e.Error()
		}
	case ctx.Err() != nil:
		_ = m.Nak() // stopping: the next registry applies it
		return
	case md.NumDelivered < intakeMaxDeliver:
		s.retryIntake(ctx, m, md, req.Op, log, err)
		return
	default:
		log.Error("intake request failed on its last delivery", "err", err)
		out = events.Outcome{RequestID: env.ID, Op: req.Op, Cluster: req.Cluster, Result: events.OutcomeRefused, Code: rh.EINTERNAL,
			Reason: "internal error: the registry could not apply the request; see its log for request " + env.ID, Done: true}
	}
	rec.State, rec.Outcome = intakeAnswered, &out
	b, _ := json.Marshal(rec)
	if _, err := s.intake.Update(ctx, key, b, rev); err != nil {
		// The effect happened; a redelivery finds the claim still applying
		// and re-applies, which the ops take as a no-op.
		s.retryIntake(ctx, m, md, req.Op, log, fmt.Errorf("record the answer: %w", err))
		return
	}
	s.im.requests.WithLabelValues(req.Op, out.Result).Inc()
	log.Info("intake request answered", "result", out.Result, "code", out.Code)
	s.sendOutcome(publisher, 1, out)
	if !out.Done && c != nil {
		f := intakeFollow{Publisher: publisher, Last: out, Seq: 1, Incarnation: c.Incarnation, Until: s.now().Add(intakeFollowFor),
			Owner: s.instance, Beat: s.now()}
		fkey := followKey(publisher, env.ID)
		b, _ := json.Marshal(f)
		// Not cut short by a stop: a follow recorded and then released is
		// taken over by the next registry at once; one left half-written
		// would wait for followStale.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeout)
		frev, err := s.intake.Put(pctx, fkey, b)
		cancel()
		if err != nil {
			log.Warn("cannot record intake follow; nothing reports this request's changes", "err", err)
		} else {
			s.startFollow(fkey, f, frev)
		}
	}
	_ = m.DoubleAck(ctx)
}

// claimIntake creates the request's record, or returns the one a former
// delivery or publication made. fresh is true when this call created it.
func (s *Service) claimIntake(ctx context.Context, key string, rec intakeRecord) (intakeRecord, uint64, bool, error) {
	b, _ := json.Marshal(rec)
	rev, err := s.intake.Create(ctx, key, b)
	if err == nil {
		return rec, rev, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return rec, 0, false, fmt.Errorf("registry: claim intake request: %w", err)
	}
	e, err := s.intake.Get(ctx, key)
	if err != nil {
		return rec, 0, false, fmt.Errorf("registry: read intake request: %w", err)
	}
	var old intakeRecord
	if err := json.Unmarshal(e.Value(), &old); err != nil {
		return rec, 0, false, fmt.Errorf("registry: decode intake request: %w", err)
	}
	return old, e.Revision(), false, nil
}

// applyIntake runs the request through the API's own code with the
// publisher as the caller. A request claimed by an earlier delivery that
// died before answering is applied again: up, teardown and delete take a
// repeat as a no-op or not-found, and a create whose record this
// publisher made since the claim is the earlier attempt's.
func (s *Service) applyIntake(ctx context.Context, caller rh.Caller, req *events.ClusterRequest, rec intakeRecord, fresh bool) (*rh.Cluster, error) {
	actx, cancel := context.WithTimeout(auth.WithCaller(ctx, caller), svc.Timeout)
	defer cancel()
	switch req.Op {
	case events.RequestCreate:
		r, err := s.Create(actx, api.CreateRequest{Name: req.Cluster, Spec: *req.Spec, NoUp: req.NoUp})
		if err != nil && !fresh && rh.ErrorCode(err) == rh.ECONFLICT {
			if c, _, lerr := s.load(actx, req.Cluster); lerr == nil && c.Owner == caller.User && !c.CreatedAt.Before(rec.ClaimedAt) {
				return c, nil
			}
		}
		if err != nil {
			return nil, err
		}
		return r.Cluster, nil
	case events.RequestUp:
		r, err := s.Up(actx, api.NameRequest{Name: req.Cluster})
		if err != nil {
			return nil, err
		}
		return r.Cluster, nil
	case events.RequestTeardown:
		r, err := s.Teardown(actx, api.NameRequest{Name: req.Cluster})
		if err != nil {
			return nil, err
		}
		return r.Cluster, nil
	case events.RequestDelete:
		_, err := s.Delete(actx, api.DeleteRequest{Name: req.Cluster, Force: req.Force})
		if err != nil && !fresh && rh.ErrorCode(err) == rh.ENOTFOUND {
			return nil, nil // the earlier attempt deleted it
		}
		return nil, err
	}
	return nil, rh.Invalid("data.op", "%q is not an intake op", req.Op)
}

// settled reports whether op's cluster has reached where op leads.
func settled(op string, p rh.Phase) bool {
	switch op {
	case events.RequestTeardown:
		return p == rh.PhaseTerminated || p == rh.PhaseFailed || p == rh.PhaseDefined
	case events.RequestDelete:
		return true
	}
	return p != rh.PhasePending && p != rh.PhaseProvisioning && p != rh.PhaseTearingDown
}

// followIntake reports the cluster's changes to the publisher until it
// settles, a later up or teardown takes over, the publisher may no longer
// read it (or is removed), the follow's time is up, or another registry
// took the follow over. It beats on the follow key while it reports, and a
// registry that stops releases the key for the next to take over at once.
func (s *Service) followIntake(ctx context.Context, key string, f intakeFollow, rev uint64) {
	first := f.Last
	caller, _, err := s.cfg.Auth.Publisher(auth.IntakeSubject(f.Publisher))
	if err != nil {
		s.forgetFollow(key, first.RequestID) // a removed user hears nothing more
		return
	}
	end := time.NewTimer(max(time.Until(f.Until), 0))
	defer end.Stop()
	beat := time.NewTicker(followBeat)
	defer beat.Stop()
	// save writes the follow if it is still ours; false means another
	// registry took it over (or it ended), so this one stops reporting.
	save := func(ctx context.Context) bool {
		f.Beat = s.now()
		b, _ := json.Marshal(f)
		r, err := s.intake.Update(ctx, key, b, rev)
		switch {
		case err == nil:
			rev = r
		case events.IsCASConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound):
			s.log.Info("another registry reports this intake request's changes now", "request_id", first.RequestID)
			return false
		case ctx.Err() == nil:
			s.log.Warn("cannot record intake follow; another registry may take it over", "request_id", first.RequestID, "err", err)
		}
		return true
	}
	send := func(o events.Outcome) bool {
		f.Seq++
		s.sendOutcome(f.Publisher, f.Seq, o)
		if o.Done {
			s.forgetFollow(key, o.RequestID)
			return false
		}
		f.Last = o
		return save(ctx)
	}
	for {
		cur, _, _, changed := s.cache.current(first.Cluster)
		o := events.Outcome{RequestID: first.RequestID, Op: first.Op, Cluster: first.Cluster, Result: events.OutcomeState}
		switch {
		case cur == nil:
			o.Message, o.Done = "the cluster was deleted", true
			send(o)
			return
		case !caller.Can(cur, rh.AccessRead):
			o.Message, o.Done = "you may no longer read this cluster", true
			send(o)
			return
		case cur.Incarnation > f.Incarnation:
			o.Phase, o.Generation, o.Done = cur.Status.Phase, cur.Generation, true
			o.Message = fmt.Sprintf("a later request took over (generation %d)", cur.Incarnation)
			send(o)
			return
		case cur.Status.Phase != f.Last.Phase || cur.Status.Message != f.Last.Message:
			o.Phase, o.Message, o.Generation = cur.Status.Phase, cur.Status.Message, cur.Generation
			o.Done = settled(first.Op, cur.Status.Phase)
			if !send(o) {
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-beat.C:
			if !save(ctx) {
				return
			}
		case <-end.C:
			o.Phase, o.Message, o.Generation, o.Done = cur.Status.Phase, "rh stops reporting this request's changes: watch the cluster instead", cur.Generation, true
			send(o)
			return
		case <-ctx.Done():
			// Stopping: release it, so the next registry takes it over at
			// once rather than after followStale.
			f.Owner = ""
			rctx, cancel := context.WithTimeout(context.Background(), svc.Timeout)
			save(rctx)
			cancel()
			return
		}
	}
}

func (s *Service) forgetFollow(key, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), svc.Timeout)
	defer cancel()
	if err := s.intake.Delete(ctx, key); err != nil {
		s.log.Warn("cannot drop intake follow", "request_id", id, "err", err)
	}
}

// whoami answers who the server takes the caller for, and the caller's
// intake and outcome subjects, so a publisher with only a NATS client can
// find them with `nats req rh.api.registry.whoami ""`.
func (s *Service) whoami() micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		c, err := s.cfg.Auth.Caller(nats.Header(r.Headers()))
		if err != nil {
			svc.RespondError(r, err)
			return
		}
		key := c.Key
		reply := api.WhoamiReply{User: c.User, Role: c.Role, Key: key}
		if key != "" {
			reply.IntakeSubject = auth.IntakeSubject(key)
			reply.OutcomeSubject = auth.OutcomePrefix(key) + ".>"
		}
		_ = r.RespondJSON(reply)
	})
}

// sendOutcome publishes an outcome to its publisher. Outcomes are answers
// on the bus, not stored facts: one nobody listens to is gone.
func (s *Service) sendOutcome(publisher string, seq int, o events.Outcome) {
	env, err := events.NewOutcome(Source, seq, o)
	if err != nil {
		s.log.Error("cannot build outcome", "request_id", o.RequestID, "err", err)
		return
	}
	b, err := env.Marshal()
	if err != nil {
		s.log.Error("cannot encode outcome", "request_id", o.RequestID, "err", err)
		return
	}
	cluster := o.Cluster
	if cluster == "" {
		cluster = "-"
	}
	if err := s.nc.Publish(events.OutcomeSubject(publisher, cluster), b); err != nil {
		s.log.Warn("cannot publish outcome", "request_id", o.RequestID, "err", err)
	}
}

func (s *Service) retryIntake(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, op string, log *slog.Logger, err error) {
	if ctx.Err() == nil {
		log.Warn("cannot apply intake request yet; retrying", "delivery", md.NumDelivered, "err", err)
	}
	s.im.requests.WithLabelValues(op, "retried").Inc()
	_ = m.NakWithDelay(time.Second)
}

func (s *Service) intakeDead(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, op, class, reason string) {
	s.log.Warn("dead-lettering intake request", "subject", m.Subject(), "reason", reason)
	stored, err := events.DeadLetter(ctx, s.js, md.Stream, md.Consumer, m.Subject(), md.Sequence.Stream, m.Data(), reason)
	if err != nil {
		_ = m.NakWithDelay(time.Second)
		return
	}
	s.im.requests.WithLabelValues(op, "dead_lettered").Inc()
	if stored {
		s.m.deadLetters.WithLabelValues(md.Stream, md.Consumer, class).Inc()
	}
	_ = m.Term()
}
