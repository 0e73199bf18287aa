package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/svc"
)

const stateConsumer = "registry"

func (s *Service) startStateConsumer(ctx context.Context) error {
	cons, err := s.js.CreateOrUpdateConsumer(ctx, events.StreamState, jetstream.ConsumerConfig{
		Durable:       stateConsumer,
		Description:   "rh registry applies worker state reports",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.ReportAckWait,
		MaxDeliver:    10,
		MaxAckPending: 256,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("registry: state consumer: %w", err)
	}
	// Reports for different clusters are applied in parallel; one cluster's
	// reports stay in order on one shard.
	// Every report pulled is leased until it is acked, also while it waits
	// for its shard, so the lease can be short: the reports a dead registry
	// pulled come back to its replacement within ReportAckWait.
	held := svc.NewLeases(s.cfg.ReportAckWait)
	s.wg.Go(func() { held.Keep(ctx) })
	shards := make([]chan jetstream.Msg, reportShards)
	for i := range shards {
		shards[i] = make(chan jetstream.Msg, 64)
		s.wg.Go(func() {
			for m := range shards[i] {
				s.onReport(ctx, m)
				held.Done(m)
			}
		})
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		held.Add(m)
		shards[shardOf(m.Subject())] <- m
	}, jetstream.PullMaxMessages(256))
	if err != nil {
		for _, sh := range shards {
			close(sh)
		}
		return fmt.Errorf("registry: consume state: %w", err)
	}
	s.wg.Go(func() {
		<-ctx.Done()
		cc.Drain()
		<-cc.Closed()
		for _, sh := range shards {
			close(sh)
		}
	})
	return nil
}

// reportShards is how many clusters' reports are applied at once.
const reportShards = 8

// shardOf maps a report subject (which names the cluster) to its shard.
func shardOf(subject string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(subject))
	return int(h.Sum32() % reportShards)
}

func (s *Service) onReport(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	// Lag includes the wait for the cluster's shard: it is how far behind
	// the registry applies what workers report.
	if lag := time.Since(md.Timestamp); lag >= 0 {
		s.m.reportLag.Observe(lag.Seconds())
	}
	env, data, err := events.Decode(m.Data())
	rep, ok := data.(*events.StateReport)
	if err == nil && !ok {
		err = fmt.Errorf("event type %s is not a state report", env.Type)
	}
	if err != nil {
		s.deadLetter(ctx, m, md, svc.DeadMalformed, "malformed state report: "+err.Error())
		return
	}
	if want := events.StateSubject(rep.Kind, rep.Cluster); m.Subject() != want {
		s.deadLetter(ctx, m, md, svc.DeadMisrouted, fmt.Sprintf("report for %s/%s arrived on %s", rep.Kind, rep.Cluster, m.Subject()))
		return
	}
	outcome, err := s.Apply(ctx, rep)
	if rh.ErrorCode(err) == rh.EINVALID {
		s.deadLetter(ctx, m, md, svc.DeadRefused, "refused state report: "+err.Error())
		return
	}
	if err != nil {
		if ctx.Err() != nil {
			_ = m.Nak()
			return
		}
		s.log.Warn("cannot apply report; retrying", "cluster", rep.Cluster, "err", err)
		_ = m.NakWithDelay(time.Second)
		s.m.reports.WithLabelValues("retried").Inc()
		return
	}
	s.m.reports.WithLabelValues(outcome).Inc()
	_ = m.DoubleAck(ctx)
}

func (s *Service) deadLetter(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, class, reason string) {
	s.log.Warn("dead-lettering", "subject", m.Subject(), "reason", reason)
	stored, err := events.DeadLetter(ctx, s.js, md.Stream, md.Consumer, m.Subject(), md.Sequence.Stream, m.Data(), reason)
	if err != nil {
		_ = m.NakWithDelay(time.Second)
		return
	}
	s.m.reports.WithLabelValues("dead_lettered").Inc()
	if stored {
		s.m.deadLetters.WithLabelValues(md.Stream, md.Consumer, class).Inc()
	}
	_ = m.Term()
}

// Report outcomes.
const (
	OutcomeApplied   = "applied"
	OutcomeStale     = "stale" // about an earlier incarnation
	OutcomeOutOfDate = "out_of_order"
	OutcomeDuplicate = "duplicate"
	OutcomeUnknown   = "unknown_cluster"
)

// Apply applies a state report to its cluster's record. A report about an
// earlier incarnation, one older than the last applied, a duplicate, or one
// that would move the cluster backwards changes nothing.
//
// A report that breaks the rules of checkReport, or carries node proxy
// commands it may not, is refused with an invalid error and changes nothing.
func (s *Service) Apply(ctx context.Context, rep *events.StateReport) (string, error) {
	if err := checkReport(rep); err != nil {
		return "", err
	}
	outcome := OutcomeApplied
	var becameUp, becameFailed bool
	c, err := s.mutate(ctx, rep.Cluster, func(c *rh.Cluster) (bool, error) {
		becameUp, becameFailed = false, false
		if err := checkProxyCommands(rep, c); err != nil {
			return false, err
		}
		switch {
		case rep.Kind != c.Spec.Kind:
			outcome = OutcomeStale
			return false, nil
		case rep.Generation < c.Incarnation:
			outcome = OutcomeStale
			return false, nil
		case rep.Phase.Rank() < c.Status.Phase.Rank():
			outcome = OutcomeOutOfDate
			return false, nil
		case rep.Generation <= c.Status.ObservedGeneration && !rep.ObservedAt.After(c.Status.ReportedAt):
			// Within one generation, time orders reports; a report about a newer
			// generation is newer by definition, whatever the worker's clock says.
			if rep.ObservedAt.Equal(c.Status.ReportedAt) {
				outcome = OutcomeDuplicate
			} else {
				outcome = OutcomeOutOfDate
			}
			return false, nil
		}
		outcome = OutcomeApplied
		st := &c.Status
		changed := st.Phase != rep.Phase || st.Message != rep.Message
		if changed {
			s.record(c, rep.Phase, rep.Message)
			c.History[len(c.History)-1].Source = rep.Worker
			c.History[len(c.History)-1].Generation = rep.Generation
		}
		becameUp = rep.Phase == rh.PhaseUp && st.Phase != rh.PhaseUp && st.Phase != rh.PhaseDegraded
		becameFailed = rep.Phase == rh.PhaseFailed && failedCreate(c)
		st.Phase, st.Message, st.Owner, st.ReportedAt = rep.Phase, rep.Message, rep.Worker, rep.ObservedAt
		if rep.Nodes != nil || rep.Phase.Final() {
			st.Nodes = rep.Nodes
		}
		if rep.Info != nil && !maps.Equal(st.Info, rep.Info) {
			st.Info = rep.Info
		}
		if rep.Generation > st.ObservedGeneration {
			st.ObservedGeneration = rep.Generation
		}
		return true, nil
	})
	if rh.ErrorCode(err) == rh.ENOTFOUND {
		return OutcomeUnknown, nil // deleted meanwhile: nothing to apply to
	}
	if err != nil {
		return "", err
	}
	if becameUp && c.Intent.Op == events.OpCreate {
		s.m.provision.WithLabelValues(string(c.Spec.Kind), provisionUp).Observe(rep.ObservedAt.Sub(c.Intent.At).Seconds())
	}
	if becameFailed {
		s.m.provision.WithLabelValues(string(c.Spec.Kind), provisionFailed).Observe(rep.ObservedAt.Sub(c.Intent.At).Seconds())
	}
	return outcome, nil
}

// watchDeadLetters moves events that exhausted their deliveries without a
// worker dead-lettering them (a worker crashing on them, say) to the
// dead-letter stream, and fails their cluster with the reason. The server
// keeps such messages and only announces them in an advisory.
func (s *Service) watchDeadLetters(ctx context.Context) error {
	subj := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + events.StreamEvents + ".*"
	sub, err := s.nc.Subscribe(subj, func(msg *nats.Msg) {
		var adv struct {
			Stream     string `json:"stream"`
			Consumer   string `json:"consumer"`
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
		}
		if err := json.Unmarshal(msg.Data, &adv); err != nil {
			return
		}
		s.wg.Go(func() { s.deadLetterExhausted(ctx, adv.Stream, adv.Consumer, adv.StreamSeq, adv.Deliveries) })
	})
	if err != nil {
		return fmt.Errorf("registry: advisory: %w", err)
	}
	s.wg.Go(func() {
		<-ctx.Done()
		_ = sub.Unsubscribe()
	})
	return nil
}

func (s *Service) deadLetterExhausted(ctx context.Context, stream, consumer string, seq, deliveries uint64) {
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		return
	}
	reason := fmt.Sprintf("no worker completed it after %d deliveries", deliveries)
	stored, err := events.DeadLetter(ctx, s.js, stream, consumer, raw.Subject, seq, raw.Data, reason)
	if err != nil {
		s.log.Error("cannot dead-letter exhausted event", "seq", seq, "err", err)
		return
	}
	if stored {
		s.m.deadLetters.WithLabelValues(events.StreamEvents, consumerLabel(consumer), svc.DeadMaxDeliveries).Inc()
	}
	_, data, err := events.Decode(raw.Data)
	in, ok := data.(*events.ClusterIntent)
	if err != nil || !ok {
		return
	}
	_, err = s.mutate(ctx, in.Cluster, func(c *rh.Cluster) (bool, error) {
		if in.Generation < c.Incarnation || c.Status.Phase.Final() {
			return false, nil
		}
		msg := fmt.Sprintf("%s event dead-lettered: %s", in.Spec.Kind, reason)
		if failedCreate(c) {
			s.m.provision.WithLabelValues(string(c.Spec.Kind), provisionFailed).Observe(s.now().Sub(c.Intent.At).Seconds())
		}
		s.record(c, rh.PhaseFailed, msg)
		c.Status.Phase, c.Status.Message = rh.PhaseFailed, msg
		return true, nil
	})
	if err != nil && rh.ErrorCode(err) != rh.ENOTFOUND {
		s.log.Warn("cannot fail cluster of dead-lettered event", "cluster", in.Cluster, "err", err)
	}
}

// Caps on what a report may put in a record, which every reader of the
// cluster sees and every list page carries.
const (
	MaxReportMessage   = 4 << 10
	MaxReportInfo      = 32
	MaxReportInfoKey   = 64
	MaxReportInfoValue = 1 << 10
	MaxProxyCommand    = 1 << 10
)

// truncatedMark ends a message or info value cut to its cap.
const truncatedMark = " …[truncated]"

// checkReport bounds a report. An over-long message or info value is cut
// to its cap with a marker rather than refused: a worker's long error is
// still worth showing, and the phase it reports must land. Too many info
// entries or an over-long info key are refused: no rh worker sends those,
// so the report is a bug or a forgery.
func checkReport(rep *events.StateReport) error {
	rep.Message = truncate(rep.Message, MaxReportMessage)
	if len(rep.Info) > MaxReportInfo {
		return rh.Invalid("info", "%d entries; a report carries at most %d", len(rep.Info), MaxReportInfo)
	}
	for k, v := range rep.Info {
		if k == "" || len(k) > MaxReportInfoKey {
			return rh.Invalid("info", "key %.80q is empty or longer than %d bytes", k, MaxReportInfoKey)
		}
		rep.Info[k] = truncate(v, MaxReportInfoValue)
	}
	for i, n := range rep.Nodes {
		if n.ProxyCommand == "" {
			continue
		}
		field := fmt.Sprintf("nodes[%d].proxy_command", i)
		if len(n.ProxyCommand) > MaxProxyCommand {
			return rh.Invalid(field, "longer than %d bytes", MaxProxyCommand)
		}
		if strings.ContainsAny(n.ProxyCommand, "\n\r\x00") {
			return rh.Invalid(field, "must be one line without NUL bytes")
		}
	}
	return nil
}

// checkProxyCommands accepts node proxy commands only from the worker that
// sets them for its kind (ondemand: SkyPilot's, sagemaker: SSM's), reporting
// on its own kind's subject about a cluster of that kind. A BYO cluster's
// proxy command comes only from its spec, so a BYO report may at most echo it.
func checkProxyCommands(rep *events.StateReport, c *rh.Cluster) error {
	for i, n := range rep.Nodes {
		if n.ProxyCommand == "" {
			continue
		}
		field := fmt.Sprintf("nodes[%d].proxy_command", i)
		switch {
		case rep.Kind != c.Spec.Kind:
			return rh.Invalid(field, "a %s report may not set proxy commands of %s cluster %q", rep.Kind, c.Spec.Kind, c.Name)
		case rep.Kind == rh.KindOnDemand, rep.Kind == rh.KindSageMaker:
		case rep.Kind == rh.KindBYO && c.Spec.BYO != nil && n.ProxyCommand == c.Spec.BYO.ProxyCommand:
		default:
			return rh.Invalid(field, "%s nodes take their proxy command from the cluster's spec, never from a report", rep.Kind)
		}
	}
	return nil
}

// truncate cuts s to at most max bytes (on a rune boundary), marked.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(truncatedMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMark
}

// failedCreate reports whether failing c now ends a create (or up) before
// the cluster was first Up: the failure counterpart of a provision time.
func failedCreate(c *rh.Cluster) bool {
	return c.Intent.Op == events.OpCreate && c.Status.Phase.Rank() < rh.PhaseUp.Rank()
}
