// Package cli is rhcli: every command is a thin layer over the Go SDK
// (package client), and `rhcli serve` runs the services. Run is main without
// the process: tests call it with their own arguments and writers.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
)

// Exit codes of rhcli.
const (
	ExitOK        = 0
	ExitError     = 1
	ExitInvalid   = 2
	ExitNotFound  = 3
	ExitConflict  = 4
	ExitForbidden = 5
)

// Version is set at build time with -ldflags "-X github.com/rhq/rh/internal/cli.Version=...".
var Version = "0.1.0-dev"

// IO is where a command reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
}

type app struct {
	io      IO
	natsURL string
	creds   string
	tlsCA   string
	output  string
}

// Run runs rhcli with args (without the program name) and returns its exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	if stdio.Getenv == nil {
		stdio.Getenv = os.Getenv
	}
	a := &app{io: stdio}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ce *exitCodeError
	if errors.As(err, &ce) {
		if ce.msg != "" {
			fmt.Fprintln(stdio.Err, "rhcli: "+ce.msg)
		}
		return ce.code
	}
	fmt.Fprintln(stdio.Err, "rhcli: "+err.Error())
	return exitCode(err)
}

func exitCode(err error) int {
	var fe *flagError
	if errors.As(err, &fe) {
		return ExitInvalid
	}
	switch rh.ErrorCode(err) {
	case rh.EINVALID:
		return ExitInvalid
	case rh.ENOTFOUND:
		return ExitNotFound
	case rh.ECONFLICT:
		return ExitConflict
	case rh.EFORBIDDEN:
		return ExitForbidden
	}
	return ExitError
}

// exitCodeError ends rhcli with code, printing msg unless it is empty: a
// remote command's own exit status (rhcli run, rhcli ssh) needs no words.
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// flagError is a command-line usage error (unknown flag, wrong argument count).
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "rhcli",
		Short:         "rh: named clusters over your machines, cloud machines and SageMaker",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.natsURL, "nats", "", "NATS URL of rh (default $RH_NATS_URL, else "+client.DefaultURL+")")
	pf.StringVar(&a.creds, "creds", "", "NATS credentials file (default $RH_NATS_CREDS, else ~/.rh/auth/operator.creds for a local rh)")
	pf.StringVar(&a.tlsCA, "tls-ca", "", "CA certificate (PEM) that signed rh's NATS TLS certificate, if not one the system trusts (default $RH_NATS_CA)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	// Every command of rhcli, in one list (help sorts them): what rhcli can
	// do is read here, not gathered from init() in other files.
	root.AddCommand(
		a.clusterCmd(),
		a.runCmd(),
		a.runPythonCmd(),
		a.installCmd(),
		a.putCmd(),
		a.getFilesCmd(),
		a.sshCmd(),
		a.tunnelCmd(),
		a.notebookCmd(),
		a.userCmd(),
		a.checkCmd(),
		a.serveCmd(),
		a.natsConfigCmd(),
		a.simCmd(),
		a.versionCmd(),
		a.healthCmd(), // hidden: container health checks
		a.agentCmd(),  // hidden: started by the gateway on each node
	)
	return root
}

func (a *app) connect(ctx context.Context) (*client.Client, error) {
	if err := a.checkOutput(); err != nil {
		return nil, err
	}
	url := a.natsURL
	if url == "" {
		url = a.io.Getenv("RH_NATS_URL")
	}
	creds := a.creds
	if creds == "" {
		creds = a.io.Getenv("RH_NATS_CREDS")
	}
	if url == "" {
		url = client.DefaultURL
	}
	ca := a.tlsCA
	if ca == "" {
		ca = a.io.Getenv("RH_NATS_CA")
	}
	return client.Connect(ctx, client.Options{URL: url, Creds: creds, TLSCA: ca, Name: "rhcli"})
}

func (a *app) checkOutput() error {
	switch a.output {
	case "table", "json", "yaml":
		return nil
	}
	return rh.Invalid("--output", "%q is not one of table, json, yaml", a.output)
}

func exactArgs(n int, names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return &flagError{fmt.Errorf("expects %d argument(s): %s; got %d", n, strings.Join(names, " "), len(args))}
		}
		return nil
	}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Print rhcli's version", Args: exactArgs(0),
		RunE: func(*cobra.Command, []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.print(map[string]string{"version": Version}, func(w io.Writer) { fmt.Fprintln(w, "rhcli", Version) })
		},
	}
}

func (a *app) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(a.io.Err, &slog.HandlerOptions{Level: level}))
}
