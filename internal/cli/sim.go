package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/sshnode"
)

// simCmd groups helpers for trying rh on one machine with no cloud account.
func (a *app) simCmd() *cobra.Command {
	c := &cobra.Command{Use: "sim", Short: "Local stand-ins for machines and clouds (for demos and tests)"}
	c.AddCommand(a.simNodesCmd(), a.simSSMProxyCmd())
	return c
}

// simNodesCmd starts local sshd "machines" so a BYO cluster can be tried
// without any: each node is a real OpenSSH server on its own loopback address.
func (a *app) simNodesCmd() *cobra.Command {
	var n int
	var dir string
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Run N local sshd nodes until interrupted; prints their addresses and a key",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || n > 32 {
				return &flagError{fmt.Errorf("--count: %d is outside 1-32", n)}
			}
			if err := sshnode.EnsureSSHD(""); err != nil {
				return err
			}
			key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
			if err != nil {
				return err
			}
			if dir == "" {
				dir, err = os.MkdirTemp("", "rh-sim-nodes-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
			}
			keyPath := filepath.Join(dir, "id_ed25519")
			if err := os.WriteFile(keyPath, key.PrivatePEM, 0o600); err != nil {
				return err
			}
			ctx := cmd.Context()
			var nodes []*sshnode.Node
			defer func() {
				for _, nd := range nodes {
					_ = nd.Close()
				}
			}()
			for range n {
				// One port for all, as BYO clusters take one --ssh-port.
				port := 0
				if len(nodes) > 0 {
					port = nodes[0].Port()
				}
				nd, err := sshnode.Start(ctx, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}, Port: port})
				if err != nil {
					return err
				}
				nodes = append(nodes, nd)
			}
			var ips []string
			for _, nd := range nodes {
				ips = append(ips, nd.Addr())
			}
			fmt.Fprintf(a.io.Out, "ips=%s port=%d user=%s key=%s\n", strings.Join(ips, ","), nodes[0].Port(), nodes[0].User(), keyPath)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&n, "count", 2, "how many nodes")
	cmd.Flags().StringVar(&dir, "dir", "", "where to write the private key (default: a temporary directory, removed on exit)")
	return cmd
}

// simSSMProxyCmd is the ProxyCommand of simulated SageMaker nodes: it stands in
// for `aws ssm start-session --document-name AWS-StartSSHSession`.
func (a *app) simSSMProxyCmd() *cobra.Command {
	var endpoint, target string
	cmd := &cobra.Command{
		Use:   "ssm-proxy --endpoint URL --target TARGET",
		Short: "Carry an SSH stream to a simulated SageMaker node (a ProxyCommand)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if endpoint == "" || target == "" {
				return &flagError{fmt.Errorf("--endpoint and --target are required")}
			}
			return sagemakersim.ProxyMain(context.WithoutCancel(cmd.Context()), endpoint, target, a.io.In, a.io.Out)
		},
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "URL of the SageMaker simulator")
	cmd.Flags().StringVar(&target, "target", "", "SSM target (sagemaker-training-job:<job>_algo-<n>)")
	return cmd
}
