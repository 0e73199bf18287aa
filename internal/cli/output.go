package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"sigs.k8s.io/yaml"

	rh "github.com/rhq/rh"
)

// print writes v as JSON or YAML, or calls table for the human form.
func (a *app) print(v any, table func(io.Writer)) error {
	switch a.output {
	case "json":
		enc := json.NewEncoder(a.io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = a.io.Out.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// interactive reports whether progress lines should be shown.
func (a *app) interactive() bool {
	if a.output != "table" {
		return false
	}
	f, ok := a.io.Err.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func clusterTable(w io.Writer, cs []rh.ClusterSummary) {
	fmt.Fprintln(w, "NAME\tKIND\tOWNER\tPHASE\tNODES\tAGE\tMESSAGE")
	for _, c := range cs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.Name, c.Kind, dash(c.Owner), c.Phase, c.Nodes, age(c.CreatedAt), oneLine(c.Message))
	}
}

func clusterDetail(w io.Writer, c *rh.Cluster) {
	fmt.Fprintf(w, "Name:\t%s\n", c.Name)
	fmt.Fprintf(w, "Kind:\t%s\n", c.Spec.Kind)
	if c.Owner != "" {
		fmt.Fprintf(w, "Owner:\t%s\n", c.Owner)
	}
	if len(c.Shares) > 0 {
		shares := make([]string, 0, len(c.Shares))
		for _, u := range slices.Sorted(maps.Keys(c.Shares)) {
			shares = append(shares, u+" ("+string(c.Shares[u])+")")
		}
		fmt.Fprintf(w, "Shared with:\t%s\n", strings.Join(shares, ", "))
	}
	fmt.Fprintf(w, "Phase:\t%s\n", c.Status.Phase)
	if c.Status.Message != "" {
		fmt.Fprintf(w, "Message:\t%s\n", oneLine(c.Status.Message))
	}
	fmt.Fprintf(w, "Generation:\t%d (observed %d)\n", c.Generation, c.Status.ObservedGeneration)
	if a := c.Spec.Autostop(); a >= 0 {
		fmt.Fprintf(w, "Autostop:\t%d min\n", a)
	} else {
		fmt.Fprintf(w, "Autostop:\tnever\n")
	}
	switch {
	case c.Spec.BYO != nil:
		b := c.Spec.BYO
		auth := []string{}
		if b.HasKey {
			auth = append(auth, "key <redacted>")
		}
		if b.HasPassword {
			auth = append(auth, "password <redacted>")
		}
		if b.UseAgent {
			auth = append(auth, "ssh-agent")
		}
		if len(auth) == 0 {
			auth = append(auth, "gateway defaults")
		}
		fmt.Fprintf(w, "Hosts:\t%s (user %s, port %d)\n", strings.Join(b.IPs, ", "), b.SSHUser, b.SSHPort)
		fmt.Fprintf(w, "Auth:\t%s\n", strings.Join(auth, ", "))
	case c.Spec.OnDemand != nil:
		o := c.Spec.OnDemand
		fmt.Fprintf(w, "Resources:\t%d × %s on %s", o.NumInstances, o.InstanceType, o.Provider)
		if o.Region != "" {
			fmt.Fprintf(w, " (%s)", o.Region)
		}
		if o.UseSpot {
			fmt.Fprint(w, ", spot")
		}
		fmt.Fprintln(w)
	case c.Spec.SageMaker != nil:
		m := c.Spec.SageMaker
		fmt.Fprintf(w, "Resources:\t%d × %s\n", m.NumInstances, m.InstanceType)
		if m.Role != "" {
			fmt.Fprintf(w, "Role:\t%s\n", m.Role)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Status.Info)) {
		fmt.Fprintf(w, "%s:\t%s\n", k, c.Status.Info[k])
	}
	fmt.Fprintf(w, "Created:\t%s (%s ago)\n", c.CreatedAt.Local().Format(time.DateTime), age(c.CreatedAt))
	if len(c.Status.Nodes) > 0 {
		fmt.Fprintln(w, "Nodes:")
		fmt.Fprintln(w, "  ADDRESS\tUSER\tREACHABLE\tOS\tCPUS\tMEMORY\tGPUS\tHOST KEY")
		for _, n := range c.Status.Nodes {
			addr := n.Address
			if n.Port != 0 && n.Port != 22 {
				addr = fmt.Sprintf("%s:%d", n.Address, n.Port)
			}
			os, cpus, mem, gpus := "-", "-", "-", "-"
			if f := n.Facts; f != nil {
				os = f.OS
				cpus = fmt.Sprint(f.CPUs)
				mem = bytesHuman(f.MemoryBytes)
				if len(f.GPUs) > 0 {
					gpus = fmt.Sprintf("%d× %s", len(f.GPUs), f.GPUs[0].Name)
				}
			}
			reach := "yes"
			if !n.Reachable {
				reach = "no"
				if n.Message != "" {
					reach = "no: " + oneLine(n.Message)
				}
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", addr, n.User, reach, os, cpus, mem, gpus, n.HostKey)
		}
	}
}

func bytesHuman(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func transitionLine(w io.Writer, t rh.Transition) {
	from := string(t.From)
	if from == "" {
		from = "-"
	}
	fmt.Fprintf(w, "%s\t%d\t%s → %s\t%s\t%s\n", t.At.Local().Format("2006-01-02 15:04:05.000"), t.Generation, from, t.To, t.Source, oneLine(t.Message))
}
