package svc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/auth"
)

// ServeCheck starts a worker's check endpoint, api.CheckSubject(kind), as a
// micro service of its own (replicas share its queue group: one answers).
// items reports what the worker sees from where it runs. Every caller NATS
// let in may ask, viewers included: the answer names regions, roles and
// versions, never secrets, so a worker needs no users directory for it
// (authn may be nil: then every caller is taken as the operator).
func ServeCheck(ctx context.Context, nc *nats.Conn, log *slog.Logger, authn *auth.Authenticator, kind rh.Kind, worker string,
	items func(context.Context) []api.CheckItem) (micro.Service, error) {
	sv, err := micro.AddService(nc, micro.Config{
		Name: "rh-check-" + string(kind), Version: "1.0.0", Description: "what the " + string(kind) + " worker sees where it runs",
	})
	if err != nil {
		return nil, fmt.Errorf("%s worker: check endpoint: %w", kind, err)
	}
	h := Handle(ctx, log, authn, func(ctx context.Context, _ api.CheckRequest) (api.CheckReply, error) {
		rep := api.CheckReply{Kind: kind, Worker: worker, Ready: true, Items: items(ctx)}
		for _, it := range rep.Items {
			rep.Ready = rep.Ready && (it.OK || it.Optional)
		}
		return rep, nil
	})
	if err := sv.AddEndpoint("check", h, micro.WithEndpointSubject(api.CheckSubject(kind))); err != nil {
		_ = sv.Stop()
		return nil, fmt.Errorf("%s worker: check endpoint: %w", kind, err)
	}
	// Subscriptions reach the server asynchronously: a check asked right
	// after the worker started would find no responder without the flush.
	if err := nc.FlushTimeout(30 * time.Second); err != nil {
		log.Warn("check endpoint: flush", "err", err)
	}
	return sv, nil
}
