// Package svc holds what rh's micro services share: typed JSON handlers whose
// errors travel as rh errors, and the health state /readyz reports.
package svc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/auth"
)

// Timeout bounds one request's work.
const Timeout = 30 * time.Second

// Handle adapts a typed function to a micro handler. The caller comes from
// the server-set headers (authn) and reaches fn in its context
// (auth.CallerFrom); a caller authn refuses gets forbidden before anything
// else. The body is decoded strictly (an unknown field is an invalid request
// naming it); an *rh.Error is answered with its code, and anything else as an
// internal error whose details only the log records (see RespondError).
func Handle[Req, Resp any](ctx context.Context, log *slog.Logger, authn *auth.Authenticator, fn func(context.Context, Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		caller, err := authn.Caller(nats.Header(r.Headers()))
		if err != nil {
			RespondError(r, err)
			return
		}
		req, err := Decode[Req](r.Data())
		if err != nil {
			RespondError(r, err)
			return
		}
		rctx, cancel := context.WithTimeout(auth.WithCaller(ctx, caller), Timeout)
		defer cancel()
		resp, err := fn(rctx, req)
		if err != nil {
			respondError(log, r, err)
			return
		}
		if raw, ok := any(resp).(RawResponse); ok {
			_ = r.Respond(raw.RawJSON())
			return
		}
		_ = r.RespondJSON(resp)
	})
}

// Decode decodes a request body strictly: an unknown field is an invalid
// request naming it. An empty body is the zero request. Every endpoint,
// typed (Handle) or raw (streams), decodes through it so they agree.
func Decode[Req any](data []byte) (Req, error) {
	var req Req
	if len(bytes.TrimSpace(data)) == 0 {
		return req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, rh.Invalid("request", "not a valid request body: %v", err)
	}
	return req, nil
}

// RawResponse is a response already encoded as JSON, sent as it is: large
// answers (a page of records) skip encoding/json's re-validation.
type RawResponse interface{ RawJSON() []byte }

// RespondError answers with err as an rh error. An internal error's details
// (paths, addresses, a library's words) stay in the log (slog.Default): the
// client gets "internal error (request <id>)" and the log the same id.
func RespondError(r micro.Request, err error) { respondError(slog.Default(), r, err) }

func respondError(log *slog.Logger, r micro.Request, err error) {
	var e *rh.Error
	if (!errors.As(err, &e) || e.Code == rh.EINTERNAL) && StoreUnavailable(err) {
		// A store that did not answer (a stream electing a new leader after
		// a NATS node died) passes: say so, so the client asks again.
		id := uuid.NewString()
		log.Warn("store unavailable", "subject", r.Subject(), "request_id", id, "err", err)
		e = &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("rh's store did not answer; try again (request %s)", id)}
	} else if !errors.As(err, &e) || e.Code == rh.EINTERNAL {
		id := uuid.NewString()
		log.Error("request failed", "subject", r.Subject(), "request_id", id, "err", err)
		e = &rh.Error{Code: rh.EINTERNAL, Message: fmt.Sprintf("internal error (request %s)", id)}
	}
	// The cause (Err) never crosses the wire, not even in the header.
	wire := &rh.Error{Code: e.Code, Field: e.Field, Message: e.Message}
	body, _ := json.Marshal(wire)
	_ = r.Error(api.ErrorStatus(wire.Code), wire.Error(), body)
}

// Detach copies a request so another goroutine can answer it. micro reads a
// request's error state when the handler returns (for its stats); a handler
// that hands the request to a goroutine and returns would race with that
// goroutine's answer. The copy answers on the reply subject itself.
func Detach(nc *nats.Conn, r micro.Request) micro.Request {
	return &detached{nc: nc, data: r.Data(), headers: r.Headers(), subject: r.Subject(), reply: r.Reply()}
}

type detached struct {
	nc             *nats.Conn
	data           []byte
	headers        micro.Headers
	subject, reply string
}

func (d *detached) Respond(b []byte, opts ...micro.RespondOpt) error {
	m := &nats.Msg{Subject: d.reply, Data: b}
	for _, o := range opts {
		o(m)
	}
	return d.nc.PublishMsg(m)
}

func (d *detached) RespondJSON(v any, opts ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return micro.ErrMarshalResponse
	}
	return d.Respond(b, opts...)
}

func (d *detached) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	m := &nats.Msg{Subject: d.reply, Data: data, Header: nats.Header{
		micro.ErrorHeader: []string{description}, micro.ErrorCodeHeader: []string{code},
	}}
	for _, o := range opts {
		o(m)
	}
	return d.nc.PublishMsg(m)
}

func (d *detached) Data() []byte           { return d.data }
func (d *detached) Headers() micro.Headers { return d.headers }
func (d *detached) Subject() string        { return d.subject }
func (d *detached) Reply() string          { return d.reply }

// StoreUnavailable reports whether err is JetStream not answering for a
// while (no leader yet, a server shutting down, a request that timed out)
// rather than a fault of the request or of rh.
func StoreUnavailable(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 503 {
		return true
	}
	var js jetstream.JetStreamError
	if errors.As(err, &js) && js.APIError() != nil && js.APIError().Code == 503 {
		return true
	}
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoStreamResponse)
}
