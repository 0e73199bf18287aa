package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/serve"
	"github.com/rhq/rh/internal/sshx"
)

func (a *app) serveCmd() *cobra.Command {
	var o serve.Options
	var services string
	var verbose, check bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run rh's services (with an embedded NATS unless --nats is given)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.DataDir == "" {
				home := a.io.Getenv("HOME")
				if home == "" {
					home, _ = os.UserHomeDir()
				}
				o.DataDir = filepath.Join(home, ".rh")
			}
			o.NATSURL = a.natsURL
			o.Creds = a.creds
			if services != "" {
				o.Services = strings.Split(services, ",")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			o.Logger = a.logger(level)
			o.Getenv, o.Version = a.io.Getenv, Version
			if check {
				hs, err := serve.Check(cmd.Context(), o)
				if err != nil {
					return err
				}
				return a.print(hs, func(w io.Writer) { serve.WriteCheck(w, hs) })
			}
			if o.StoreKey == "" {
				o.StoreKey = a.io.Getenv(auth.StoreKeyEnv)
			}
			o.Ready = func(url, creds string) {
				if creds == "" {
					fmt.Fprintf(a.io.Out, "rh is ready: export RH_NATS_URL=%s\n", url)
					return
				}
				fmt.Fprintf(a.io.Out, "rh is ready: export RH_NATS_URL=%s RH_NATS_CREDS=%s\n", url, sshx.ShellQuote(creds))
			}
			return serve.Run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.DataDir, "data-dir", "", "where the embedded NATS keeps its data (default ~/.rh)")
	fl.StringVar(&o.Listen, "listen", "127.0.0.1:4222", "client address of the embedded NATS")
	fl.StringVar(&o.HTTPAddr, "http-addr", "", "serve /metrics, /healthz and /readyz here (e.g. 127.0.0.1:9090)")
	fl.StringVar(&services, "services", "", "services to run, comma-separated (default all: "+strings.Join(serve.ServiceNames(), ",")+")")
	fl.BoolVar(&o.Sim, "sim", false, "use the in-repo SkyPilot and SageMaker simulators (no cloud account needed)")
	fl.DurationVar(&o.ReconcileEvery, "reconcile-every", 30*time.Second, "how often live clusters are refreshed")
	fl.StringVar(&o.TLSCert, "tls-cert", "", "serve NATS clients over TLS with this certificate (required to listen beyond loopback)")
	fl.StringVar(&o.TLSKey, "tls-key", "", "the TLS certificate's private key")
	fl.StringVar(&o.TLSClientCA, "tls-client-ca", "", "also require client certificates signed by this CA")
	fl.BoolVar(&o.InsecureNATS, "insecure-nats", false, "with --nats: accept a NATS without rh's accounts; every caller is then treated as the operator (unsafe)")
	fl.IntVar(&o.Replicas, "replicas", 0, "replicas of every stream, bucket and consumer (default: 3 on a NATS cluster of 3 or more, else 1; never lowers a stream an operator raised)")
	fl.StringVar(&o.UsersFile, "users", "", "with --nats: users to record at start (the users.json `rhcli nats-config` writes)")
	fl.BoolVar(&o.AllowProxyCommands, "allow-proxy-commands", false, "let every user's clusters run proxy commands on the gateway host (default: admins' clusters only)")
	fl.BoolVar(&o.LendGatewayIdentity, "lend-gateway-identity", false, "let clusters with no key or password of their own use this machine's ~/.ssh keys and ssh-agent (for a single-user setup)")
	fl.BoolVar(&check, "check", false, "don't serve: show the running rh's streams and buckets (replicas, leader, replicas behind) and exit")
	fl.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	return cmd
}
