package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/agent"
)

func init() {
	// Not wiring, a copy of a link-time value: the build sets cli.Version
	// only, and the agent reports (and the gateway places) agent.Version; a
	// gateway and the agents it starts are the same build. Set here, before
	// any goroutine could read it.
	agent.Version = Version
}

// liveStatus fetches the gateway's live view of a cluster's nodes for
// `cluster status`. The record is the answer; the live view is a bonus that
// needs a gateway: a short wait, and nil on failure.
func liveStatus(ctx context.Context, cl *client.Client, name string) *api.LiveReply {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	live, err := cl.LiveStatus(ctx, name, "")
	if err != nil {
		return nil
	}
	return live
}

// agentCmd is `rhcli agent`, what the gateway starts on each node inside one
// SSH session: the protocol runs over stdin/stdout, so it is hidden from
// help and never run by hand.
func (a *app) agentCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "agent",
		Short:  "Run the node agent over stdin/stdout (started by the gateway on each node)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			agent.Version = Version
			if code := agent.Main(cmd.Context()); code != 0 {
				return &exitCodeError{code: code}
			}
			return nil
		},
	}
}

func (a *app) restartAgentCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "restart-agent NAME [--node all|head|N|ADDR]",
		Short: "Kill and restart the node agent on a cluster's nodes",
		Args:  exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			live, err := cl.RestartAgent(ctx, args[0], node)
			if err != nil {
				return err
			}
			return a.print(live, func(w io.Writer) {
				fmt.Fprintln(w, "NODE\tAGENT\tVERSION\tPID\tUPTIME\tMESSAGE")
				for _, n := range live.Nodes {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Node, n.Agent, dash(n.AgentVersion), pidString(n.AgentPID),
						uptime(n.UptimeSeconds, n.Agent), dash(n.Message))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&node, "node", api.NodeAll, "which nodes: all, head, a 0-based index or an address")
	return cmd
}

// liveDetail prints the live section of `rhcli cluster status`.
func liveDetail(w io.Writer, live *api.LiveReply) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Live:")
	for _, n := range live.Nodes {
		fmt.Fprintf(w, "  %s\n", n.Node)
		if n.Agent != api.AgentRunning {
			fmt.Fprintf(w, "    Agent:\t%s\n", n.Message)
		} else {
			fmt.Fprintf(w, "    Agent:\t%s, pid %d, up %s", n.AgentVersion, n.AgentPID, uptime(n.UptimeSeconds, n.Agent))
			if n.AgentRestarts > 0 {
				fmt.Fprintf(w, ", %d restart(s)", n.AgentRestarts)
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "    CPU:\t%.1f%%", n.CPUPercent)
			if len(n.LoadAverage) == 3 {
				fmt.Fprintf(w, " (load %.2f %.2f %.2f)", n.LoadAverage[0], n.LoadAverage[1], n.LoadAverage[2])
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "    Memory:\t%s / %s\n", bytesHuman(n.MemoryUsed), bytesHuman(n.MemoryTotal))
			if n.DiskTotal > 0 {
				fmt.Fprintf(w, "    Disk:\t%s / %s (%s)\n", bytesHuman(n.DiskUsed), bytesHuman(n.DiskTotal), n.DiskPath)
			}
			for _, g := range n.GPUs {
				fmt.Fprintf(w, "    GPU %d:\t%s, %d%%, %s / %s\n", g.Index, g.Name, g.UtilPercent, bytesHuman(g.MemoryUsed), bytesHuman(g.MemoryTotal))
			}
		}
		if len(n.Runs) == 0 {
			fmt.Fprintf(w, "    Running:\tnothing\n")
		}
		for _, r := range n.Runs {
			id := r.RunID
			if r.PID > 0 {
				id = fmt.Sprintf("pid %d", r.PID)
			}
			fmt.Fprintf(w, "    Running:\t%s, %s: %s\n", id, age(r.Started), oneLine(r.Command))
		}
	}
}

// statusView is `rhcli cluster status -o json`: the record's status, plus
// the live view when a gateway answered.
type statusView struct {
	rh.Status
	Live *api.LiveReply `json:"live,omitempty"`
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pidString(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}

func uptime(sec float64, state string) string {
	if state != api.AgentRunning {
		return "-"
	}
	return (time.Duration(sec * float64(time.Second))).Round(time.Second).String()
}
