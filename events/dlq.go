package events

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter copies an event that cannot be processed to the dead-letter
// stream with the reason, before the caller terminates it: a terminated message
// is gone, so the copy must be durable first. stored is false when a dead
// letter of the same stream message exists already (a repeat is dropped), so
// callers count each dead letter once.
func DeadLetter(ctx context.Context, js jetstream.JetStream, stream, consumer, subject string, seq uint64, data []byte, reason string) (stored bool, err error) {
	m := nats.NewMsg(DLQSubjectPrefix + stream + "." + consumer)
	m.Data = data
	m.Header.Set(HeaderDLQReason, reason)
	m.Header.Set(HeaderDLQStream, stream)
	m.Header.Set(HeaderDLQSubject, subject)
	m.Header.Set(HeaderDLQConsumer, consumer)
	m.Header.Set(HeaderDLQSeq, strconv.FormatUint(seq, 10))
	// One dead letter per stream message, however often we are asked.
	m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("dlq:%s:%d", stream, seq))
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return false, fmt.Errorf("events: dead-letter %s #%d: %w", stream, seq, err)
	}
	return !ack.Duplicate, nil
}

// Publish sends an envelope to subject with its id as Nats-Msg-Id, so the
// stream drops a repeat inside the duplicate window.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, env Envelope) (*jetstream.PubAck, error) {
	b, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	ack, err := js.Publish(ctx, subject, b, jetstream.WithMsgID(env.ID))
	if err != nil {
		return nil, fmt.Errorf("events: publish %s %s: %w", env.Type, env.ID, err)
	}
	return ack, nil
}
