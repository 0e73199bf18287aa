package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/auth"
)

// Files `rhcli nats-config` writes besides the credentials.
const (
	natsAccountsFile = "rh-accounts.conf"
	natsServerFile   = "nats-server.conf"
	// BootstrapUsersFile lists the users the registry records at start
	// (`rhcli serve --users FILE`): the admin whose credentials are here.
	BootstrapUsersFile = "users.json"
)

func (a *app) natsConfigCmd() *cobra.Command {
	var dir, listen, storeDir string
	var withUsers bool
	cmd := &cobra.Command{
		Use:   "nats-config --dir DIR",
		Short: "Write a nats-server configuration with rh's accounts, and credentials for each service and an admin",
		Long: `Writes what runs rh on a NATS of your own (a cluster, compose) with the same
guarantees as the embedded default:

  DIR/rh-accounts.conf      the accounts: RH (services, JetStream) exporting rh's API to
                            RH_USERS (people) with shared caller info, and the event intake
                            (rh.intake.<user key>) and its outcomes (rh.outcome.<user key>.>),
                            each user confined to its own; per-service permissions
  DIR/nats-server.conf      a whole server configuration that includes it (edit to taste:
                            listen address, TLS, cluster routes)
  DIR/service-<name>.creds  one credentials file per service: rhcli serve --creds FILE
  DIR/operator.creds        an admin user for rhcli (--creds / RH_NATS_CREDS)
  DIR/users.json            that admin, for the registry: rhcli serve --users FILE
  DIR/jetstream.key         the key that encrypts JetStream at rest

Run it again to keep the keys and rewrite the configuration. The directory is
made 0700 and every file 0600.

Users added later with ` + "`rhcli user add`" + ` are known to rh at once, but a NATS of your
own lets them connect only once its configuration lists them: run
  rhcli nats-config --dir DIR --with-users --creds DIR/operator.creds --nats URL
which asks the running rh for its users, then reload the server
(nats-server --signal reload). Removed users drop out the same way; rh itself
refuses them as soon as they are removed.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return rh.Invalid("--dir", "is required: where to write the configuration and credentials")
			}
			m, err := auth.EnsureMaterial(dir, "")
			if err != nil {
				return err
			}
			users := []rh.User{m.Operator}
			if withUsers {
				cl, err := a.connect(cmd.Context())
				if err != nil {
					return err
				}
				known, err := cl.ListUsers(cmd.Context())
				cl.Close()
				if err != nil {
					return err
				}
				for _, u := range known {
					if u.Name != m.Operator.Name && u.Key != "" {
						users = append(users, u)
					}
				}
			}
			accounts, err := auth.AccountsBlock(auth.ServerConfig{ServiceKeys: m.ServiceKeys(), Users: users, JetStream: true})
			if err != nil {
				return err
			}
			if err := auth.ReplaceSecretFile(filepath.Join(dir, natsAccountsFile), []byte("# rh's accounts, written by rhcli nats-config.\n"+accounts)); err != nil {
				return err
			}
			// The server file is the operator's to edit: it is written
			// the first time, or again when --listen or --store-dir say so.
			serverFile := filepath.Join(dir, natsServerFile)
			_, statErr := os.Stat(serverFile)
			if statErr != nil || cmd.Flags().Changed("listen") || cmd.Flags().Changed("store-dir") {
				var b strings.Builder
				fmt.Fprintf(&b, "# A nats-server for rh, written by rhcli nats-config. Beyond loopback, add a tls block.\n")
				fmt.Fprintf(&b, "listen: %q\nhttp: \"127.0.0.1:8222\"\nmax_payload: 8MB\n", listen)
				fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 128MB\n  max_file_store: 2GB\n  cipher: chachapoly\n  key: %q\n}\n", storeDir, m.StoreKey)
				fmt.Fprintf(&b, "include %q\n", natsAccountsFile)
				if err := auth.ReplaceSecretFile(serverFile, []byte(b.String())); err != nil {
					return err
				}
			}
			boot, _ := json.MarshalIndent([]rh.User{m.Operator}, "", "  ")
			if err := auth.ReplaceSecretFile(filepath.Join(dir, BootstrapUsersFile), append(boot, '\n')); err != nil {
				return err
			}
			fmt.Fprintf(a.io.Out, "wrote %s\n  nats-server -c %s\n  rhcli serve --nats URL --creds %s --services registry --users %s\n  export RH_NATS_CREDS=%s\n",
				dir, filepath.Join(dir, natsServerFile), m.ServiceCreds("<service>"), filepath.Join(dir, BootstrapUsersFile), m.OperatorCreds)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "directory to write into (made 0700)")
	fl.StringVar(&listen, "listen", "0.0.0.0:4222", "the server's client address in nats-server.conf")
	fl.StringVar(&storeDir, "store-dir", "/data", "JetStream's directory in nats-server.conf")
	fl.BoolVar(&withUsers, "with-users", false, "also list the users the running rh knows (connects with --nats/--creds as an admin)")
	return cmd
}
