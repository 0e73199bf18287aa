// Package svc holds what rh's micro services share: typed JSON handlers whose
// errors travel as rh errors, and the health state /readyz reports.
package svc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// Timeout bounds one request's work.
const Timeout = 30 * time.Second

// Handle adapts a typed function to a micro handler. The body is decoded
// strictly (an unknown field is an invalid request naming it); an *rh.Error is
// answered with its code, and anything else as an internal error that the log
// records.
func Handle[Req, Resp any](ctx context.Context, log *slog.Logger, fn func(context.Context, Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		var req Req
		if len(bytes.TrimSpace(r.Data())) > 0 {
			dec := json.NewDecoder(bytes.NewReader(r.Data()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				RespondError(r, rh.Invalid("request", "not a valid request body: %v", err))
				return
			}
		}
		rctx, cancel := context.WithTimeout(ctx, Timeout)
		defer cancel()
		resp, err := fn(rctx, req)
		if err != nil {
			if rh.ErrorCode(err) == rh.EINTERNAL {
				log.Error("request failed", "subject", r.Subject(), "err", err)
			}
			RespondError(r, err)
			return
		}
		if raw, ok := any(resp).(RawResponse); ok {
			_ = r.Respond(raw.RawJSON())
			return
		}
		_ = r.RespondJSON(resp)
	})
}

// RawResponse is a response already encoded as JSON, sent as it is: large
// answers (a page of records) skip encoding/json's re-validation.
type RawResponse interface{ RawJSON() []byte }

// RespondError answers with err as an rh error; internal details stay in the log.
func RespondError(r micro.Request, err error) {
	var e *rh.Error
	if !errors.As(err, &e) {
		e = &rh.Error{Code: rh.EINTERNAL, Message: err.Error()}
	}
	body, _ := json.Marshal(e)
	_ = r.Error(api.ErrorStatus(e.Code), e.Error(), body)
}
