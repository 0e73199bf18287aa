package serve

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natsutil"
)

// StreamHealth is what `rhcli serve --check` shows of one stream or bucket.
type StreamHealth struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Leader   string `json:"leader,omitempty"`
	// Lagging names the replicas behind the leader or offline, with their lag.
	Lagging  []string `json:"lagging,omitempty"`
	Messages uint64   `json:"messages"`
	Bytes    uint64   `json:"bytes"`
}

// Check reports the replicas, leader and lag of every rh stream and bucket
// of a running rh: the embedded server of o.DataDir on o.Listen (with the
// serve user's credentials there), or o.NATSURL with o.Creds.
func Check(ctx context.Context, o Options) ([]StreamHealth, error) {
	url, creds := o.NATSURL, o.Creds
	if url == "" {
		url = "nats://" + o.Listen
		creds = filepath.Join(o.DataDir, "auth", auth.ServiceCredsFile(auth.SvcServe))
	}
	nc, err := natsutil.Connect(ctx, url, "rh-serve-check", creds)
	if err != nil {
		return nil, fmt.Errorf("serve --check: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("serve --check: %w", err)
	}
	var names []string
	for _, c := range events.StreamConfigs(events.DefaultLimits()) {
		names = append(names, c.Name)
	}
	for _, c := range events.BucketConfigs(events.DefaultLimits()) {
		names = append(names, "KV_"+c.Bucket)
	}
	var out []StreamHealth
	for _, name := range names {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := js.Stream(sctx, name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = st.Info(sctx)
		}
		cancel()
		if err != nil {
			return out, fmt.Errorf("serve --check: stream %s: %w", name, err)
		}
		h := StreamHealth{Name: name, Replicas: info.Config.Replicas, Messages: info.State.Msgs, Bytes: info.State.Bytes}
		if ci := info.Cluster; ci != nil {
			h.Leader = ci.Leader
			for _, p := range ci.Replicas {
				if p.Offline || !p.Current || p.Lag > 0 {
					state := fmt.Sprintf("%s: %d behind", p.Name, p.Lag)
					if p.Offline {
						state = p.Name + ": offline"
					}
					h.Lagging = append(h.Lagging, state)
				}
			}
			slices.Sort(h.Lagging)
		}
		out = append(out, h)
	}
	return out, nil
}

// WriteCheck prints Check's answer as a table.
func WriteCheck(w io.Writer, hs []StreamHealth) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tREPLICAS\tLEADER\tBEHIND\tMESSAGES\tBYTES")
	for _, h := range hs {
		behind := "-"
		if len(h.Lagging) > 0 {
			behind = fmt.Sprint(h.Lagging)
		}
		leader := h.Leader
		if leader == "" {
			leader = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\n", h.Name, h.Replicas, leader, behind, h.Messages, h.Bytes)
	}
	_ = tw.Flush()
}
