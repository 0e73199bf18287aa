package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
)

func (a *app) tunnelCmd() *cobra.Command {
	var node, bind string
	var trustProxy bool
	cmd := &cobra.Command{
		Use:   "tunnel NAME REMOTE_PORT[:LOCAL_PORT] [--node N] [--bind ADDR]",
		Short: "Forward a local port to a port on a node (TensorBoard, Ray dashboard, a model server)",
		Long: "Forward LOCAL_PORT (default: the same as REMOTE_PORT; 0 picks a free one) on this machine to\n" +
			"REMOTE_PORT on the node, as `ssh -L` does, for every kind of cluster (through the same route\n" +
			"`rhcli ssh` takes: proxy command, jump host, SageMaker's SSM session). It prints the local URL and\n" +
			"runs until Ctrl-C; when the connection to the node drops it reconnects, keeping the local port.\n" +
			"It listens on 127.0.0.1 unless --bind says otherwise. Like ssh, it needs write access to the cluster.",
		Args: exactArgs(2, "NAME", "REMOTE_PORT[:LOCAL_PORT]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			// Checked before connecting: a typo exits 2 without a round trip.
			remote, local, err := parsePorts(args[1])
			if err != nil {
				return err
			}
			if net.ParseIP(bind) == nil && bind != "localhost" {
				return rh.Invalid("--bind", "%q is not an IP address", bind)
			}
			return a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
				o := client.TunnelOptions{
					Node: node, LocalAddr: net.JoinHostPort(bind, strconv.Itoa(local)),
					TrustProxyCommand: trustProxy, OnEvent: a.tunnelEvent,
				}
				t, err := cl.Tunnel(ctx, args[0], remote, o)
				if err != nil {
					return err
				}
				defer t.Close()
				if ip := net.ParseIP(bind); ip != nil && !ip.IsLoopback() {
					fmt.Fprintf(a.io.Err, "rhcli: listening on %s: anyone who can reach this machine can use the tunnel\n", t.Addr)
				}
				if err := a.printTunnel(args[0], t); err != nil {
					return err
				}
				return t.Wait()
			})(cmd, args)
		},
	}
	cmd.Flags().StringVar(&node, "node", api.NodeHead, "which node: head, a 0-based index or an address")
	cmd.Flags().StringVar(&bind, "bind", "127.0.0.1", "local address to listen on (an address other than loopback lets other machines in)")
	cmd.Flags().BoolVar(&trustProxy, "trust-proxy-command", false, proxyConsentFlagHelp)
	return cmd
}

// parsePorts reads REMOTE_PORT[:LOCAL_PORT]; the local port defaults to
// the remote one.
func parsePorts(s string) (remote, local int, err error) {
	r, l, hasLocal := strings.Cut(s, ":")
	remote, err = strconv.Atoi(r)
	if err != nil || remote < 1 || remote > 65535 {
		return 0, 0, rh.Invalid("REMOTE_PORT", "%q is not a port (1-65535)", r)
	}
	local = remote
	if hasLocal {
		local, err = strconv.Atoi(l)
		if err != nil || local < 0 || local > 65535 {
			return 0, 0, rh.Invalid("LOCAL_PORT", "%q is not a port (0-65535; 0 picks a free one)", l)
		}
	}
	return remote, local, nil
}

// printTunnel says where the tunnel listens: the URL on stdout, as data.
func (a *app) printTunnel(name string, t *client.Tunnel) error {
	v := map[string]string{"cluster": name, "node": t.Node, "local_address": t.Addr.String(), "remote": t.Remote, "url": t.URL()}
	return a.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "%s -> %s on node %s of %s (Ctrl-C to stop)\n", t.URL(), t.Remote, t.Node, name)
	})
}

// tunnelEvent tells the user on stderr what happens to the connection.
func (a *app) tunnelEvent(e client.TunnelEvent) {
	switch e.Kind {
	case "lost":
		fmt.Fprintf(a.io.Err, "rhcli: %v; reconnecting\n", e.Err)
	case "retrying":
		fmt.Fprintf(a.io.Err, "rhcli: reconnecting failed (%v); trying again in %s\n", e.Err, e.Wait)
	case "connected":
		fmt.Fprintln(a.io.Err, "rhcli: reconnected")
	case "refused":
		fmt.Fprintf(a.io.Err, "rhcli: %v\n", e.Err)
	}
}
