package sagemakerworker

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/rhq/rh/api"
)

// keepAliveTimeout bounds the gateway's rewrite of every node's file.
const keepAliveTimeout = 2 * time.Minute

// applyAutostop asks the sshgateway to rewrite the running job's
// autostop_mins file on every node, and records the value on success. It
// returns why the change did not reach the job, or "" when it did.
func (c *call) applyAutostop(ctx context.Context, rec *jobRecord, rev uint64) string {
	want := strconv.Itoa(smAutostop(c.in.Spec.Autostop()))
	if rec.Autostop == want {
		return ""
	}
	body, _ := json.Marshal(api.KeepAliveAutostopRequest{Name: c.in.Cluster, Minutes: smAutostop(c.in.Spec.Autostop())})
	rctx, cancel := context.WithTimeout(ctx, keepAliveTimeout)
	defer cancel()
	m, err := c.s.nc.RequestWithContext(rctx, api.KeepAliveAutostopSubject, body)
	if err == nil && m.Header.Get(micro.ErrorCodeHeader) != "" {
		err = errors.New(m.Header.Get(micro.ErrorHeader))
	}
	if errors.Is(err, nats.ErrNoResponders) {
		err = errors.New("no sshgateway is running")
	}
	if err != nil {
		c.log.Warn("autostop not applied to the running job", "err", err)
		return err.Error()
	}
	rec.Autostop = want
	if _, err := c.s.jobs.Save(ctx, c.in.Cluster, *rec, rev); err != nil {
		// The nodes have it; only the record of it is behind.
		c.log.Warn("autostop applied but not recorded", "err", err)
	}
	c.log.Info("autostop applied to the running job", "minutes", want)
	return ""
}
