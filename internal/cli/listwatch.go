package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"sigs.k8s.io/yaml"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
)

// listChange is one line of `cluster list --watch -o json|yaml`.
type listChange struct {
	Change  string             `json:"change"` // changed, removed
	Name    string             `json:"name"`
	Cluster *rh.ClusterSummary `json:"cluster,omitempty"`
}

// watchList prints the list as `cluster list` does, then a line per change
// of a cluster the filter keeps (or kept: a cluster leaving the filter's
// phases is shown leaving), until ctx ends (Ctrl-C). With -o json each
// change is one compact JSON object per line; with -o yaml one document.
func (a *app) watchList(ctx context.Context, cl *client.Client, keep func(rh.ClusterSummary) bool) error {
	all, changes, err := cl.WatchList(ctx)
	if err != nil {
		return err
	}
	shown := map[string]bool{}
	cs := []rh.ClusterSummary{}
	for _, c := range all {
		if keep(c) {
			cs = append(cs, c)
			shown[c.Name] = true
		}
	}
	if err := a.print(cs, func(w io.Writer) { clusterTable(w, cs) }); err != nil {
		return err
	}
	for ch := range changes {
		was := shown[ch.Name]
		if ch.Removed {
			delete(shown, ch.Name)
		} else {
			shown[ch.Name] = keep(*ch.Cluster)
			if !shown[ch.Name] {
				delete(shown, ch.Name)
			}
		}
		if !was && !shown[ch.Name] {
			continue
		}
		if err := a.printChange(ch); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("the list watch ended")
}

func (a *app) printChange(ch client.ClusterChange) error {
	lc := listChange{Change: "changed", Name: ch.Name, Cluster: ch.Cluster}
	if ch.Removed {
		lc.Change = "removed"
	}
	switch a.output {
	case "json":
		return json.NewEncoder(a.io.Out).Encode(lc)
	case "yaml":
		b, err := yaml.Marshal(lc)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.io.Out, "---\n%s", b)
		return err
	}
	tw := newLineWriter(a.io.Out)
	now := time.Now().Format("15:04:05")
	if ch.Removed {
		fmt.Fprintf(tw, "%s\t%s\tremoved\n", now, ch.Name)
	} else {
		c := ch.Cluster
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", now, c.Name, c.Kind, dash(c.Owner), c.Phase, c.Nodes, oneLine(c.Message))
	}
	return tw.Flush()
}
