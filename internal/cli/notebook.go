package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
)

func (a *app) notebookCmd() *cobra.Command {
	var node, dir string
	var port int
	var trustProxy bool
	cmd := &cobra.Command{
		Use:   "notebook NAME [--port P] [--node N] [--dir D]",
		Short: "Start Jupyter on a node and open a tunnel to it; prints the URL with its token",
		Long: "Start Jupyter on the node (the head by default) under rh's run, so Ctrl-C stops it there, and\n" +
			"forward a local port to it (see `rhcli tunnel`). Jupyter is the node's own (python3 -m jupyter, or\n" +
			"jupyter-notebook as Debian's package installs it); where it has none, rh installs it with\n" +
			"`python3 -m pip install --user notebook`, which needs a package index the node can reach.\n" +
			"--port is the local port and the one Jupyter is asked for on the node (it takes the next free one\n" +
			"there when busy); 0 picks a free local port.",
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if port < 0 || port > 65535 {
				return rh.Invalid("--port", "%d is not a port (0-65535; 0 picks a free one)", port)
			}
			return a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
				o := client.NotebookOptions{
					Node: node, Dir: dir, LocalAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
					TrustProxyCommand: trustProxy, OnEvent: a.tunnelEvent,
				}
				if port != 0 {
					o.RemotePort = port
				}
				if a.interactive() {
					fmt.Fprintf(a.io.Err, "starting Jupyter on %s (installing it if the node has none)...\n", args[0])
				}
				nb, err := cl.Notebook(ctx, args[0], o)
				if err != nil {
					return err
				}
				defer nb.Close()
				v := map[string]any{
					"cluster": args[0], "node": nb.Node, "url": nb.URL, "token": nb.Token,
					"local_address": nb.Addr.String(), "remote_port": nb.RemotePort,
				}
				if err := a.print(v, func(w io.Writer) {
					fmt.Fprintf(w, "Jupyter on node %s of %s (port %d there):\n    %s\nCtrl-C stops it.\n", nb.Node, args[0], nb.RemotePort, nb.URL)
				}); err != nil {
					return err
				}
				return nb.Wait()
			})(cmd, args)
		},
	}
	cmd.Flags().IntVar(&port, "port", client.DefaultNotebookPort, "local port, and the port asked for on the node")
	cmd.Flags().StringVar(&node, "node", api.NodeHead, "which node: head, a 0-based index or an address")
	cmd.Flags().StringVar(&dir, "dir", "", "notebook directory on the node (default: the home directory)")
	cmd.Flags().BoolVar(&trustProxy, "trust-proxy-command", false, proxyConsentFlagHelp)
	return cmd
}
