package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh/agent"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
)

// checkResult is one readiness item of `rhcli check`.
type checkResult struct {
	Area   string `json:"area"` // skypilot, ssh, sagemaker
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"` // the command or setting that makes it ready
	// Optional items do not decide readiness (a cloud that is off while
	// another is on).
	Optional bool `json:"optional,omitempty"`
}

// checkReport is what `rhcli check -o json` prints.
type checkReport struct {
	Ready  bool          `json:"ready"` // every item that is not optional is OK
	Checks []checkResult `json:"checks"`
}

// checkAreas are what `rhcli check` looks at, in order: the kinds of
// cluster, each by the area name its items carry. SSH is checked here, where
// rhcli reads keys and runs OpenSSH; SkyPilot and SageMaker are asked of
// their workers, which hold the credentials and run where they run.
var checkAreas = []struct {
	kind rh.Kind
	area string
}{
	{rh.KindOnDemand, "skypilot"},
	{rh.KindBYO, "ssh"},
	{rh.KindSageMaker, "sagemaker"},
}

// checkCmd reports whether each kind of cluster can be used: SSH from this
// machine, SkyPilot and SageMaker as their running workers see them. Not
// being ready for one kind is normal, so `check` alone exits 0 either way
// (scripts read "ready" from -o json); `check KIND` exits 1 when that kind
// is not ready.
func (a *app) checkCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check [KIND]",
		Short: "Check what on-demand (SkyPilot), BYO (SSH) and SageMaker clusters need, as their workers see it",
		Long: `Check readiness for each kind of cluster. BYO (ssh) is checked on this machine.
On-demand (skypilot) and SageMaker are asked of the running skyworker and
sagemakerworker (rh.api.check.<kind>), so the answer is what they see where they
run: the SkyPilot API server and why each cloud is off; the AWS region, where the
credentials come from, and the execution role with whether it exists. KIND is
byo, ondemand or sagemaker (ssh and skypilot also work); with it, rhcli exits 1
when that kind is not ready.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			only := rh.Kind("")
			if len(args) == 1 {
				k, err := checkKind(args[0])
				if err != nil {
					return err
				}
				only = k
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			rep := checkReport{Ready: true, Checks: []checkResult{}}
			for _, items := range a.runChecks(ctx, only) {
				for _, r := range items {
					rep.Ready = rep.Ready && (r.OK || r.Optional)
					rep.Checks = append(rep.Checks, r)
				}
			}
			if err := a.print(rep, func(w io.Writer) { checkTable(w, rep) }); err != nil {
				return err
			}
			if only != "" && !rep.Ready {
				return &exitCodeError{code: ExitError, msg: string(only) + " is not ready"}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up on checks still running after this long")
	return cmd
}

// checkKind reads check's KIND argument.
func checkKind(s string) (rh.Kind, error) {
	switch strings.ToLower(s) {
	case "byo", "ssh":
		return rh.KindBYO, nil
	case "ondemand", "skypilot", "sky":
		return rh.KindOnDemand, nil
	case "sagemaker":
		return rh.KindSageMaker, nil
	}
	return "", rh.Invalid("KIND", "%q is not one of byo, ondemand, sagemaker", s)
}

// runChecks runs the areas asked for, the workers concurrently, and
// returns their items in checkAreas order.
func (a *app) runChecks(ctx context.Context, only rh.Kind) [][]checkResult {
	out := make([][]checkResult, len(checkAreas))
	var cl *client.Client
	var connErr error
	needRh := only == "" || only != rh.KindBYO
	if needRh {
		cl, connErr = a.connect(ctx)
		if cl != nil {
			defer cl.Close()
		}
	}
	var wg sync.WaitGroup
	for i, ar := range checkAreas {
		if only != "" && ar.kind != only {
			continue
		}
		if ar.kind == rh.KindBYO {
			out[i] = a.checkSSH(ctx)
			continue
		}
		if connErr != nil {
			out[i] = []checkResult{{Area: ar.area, Name: "worker", Detail: "cannot reach rh to ask the " + string(ar.kind) + " worker: " + connErr.Error(),
				Fix: "start `rhcli serve`, or point RH_NATS_URL (--nats) and RH_NATS_CREDS (--creds) at your rh"}}
			continue
		}
		wg.Go(func() { out[i] = askWorker(ctx, cl, ar.kind, ar.area) })
	}
	wg.Wait()
	return out
}

// askWorker turns a worker's check answer into items of area.
func askWorker(ctx context.Context, cl *client.Client, kind rh.Kind, area string) []checkResult {
	rep, err := cl.Check(ctx, kind)
	if err != nil {
		r := checkResult{Area: area, Name: "worker", Detail: err.Error(), Fix: "retry with a longer --timeout"}
		if errors.Is(err, client.ErrNoWorker) {
			r.Detail = "no " + string(kind) + " worker running"
			r.Fix = "start one: `rhcli serve` runs every worker (or `rhcli serve --services " + workerOf(kind) + "` where its credentials are)"
		}
		return []checkResult{r}
	}
	out := []checkResult{{Area: area, Name: "worker", OK: true, Detail: "answered by " + rep.Worker + " (what follows is its view, from where it runs)"}}
	for _, it := range rep.Items {
		out = append(out, checkResult{Area: area, Name: it.Name, OK: it.OK, Optional: it.Optional, Detail: it.Detail, Fix: it.Fix})
	}
	return out
}

func workerOf(kind rh.Kind) string {
	if kind == rh.KindSageMaker {
		return "sagemakerworker"
	}
	return "skyworker"
}

func checkTable(w io.Writer, rep checkReport) {
	fmt.Fprintln(w, "AREA\tCHECK\tSTATUS\tDETAIL")
	for _, r := range rep.Checks {
		st := "ok"
		switch {
		case !r.OK && r.Optional:
			st = "off"
		case !r.OK:
			st = "NOT READY"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Area, r.Name, st, oneLine(r.Detail))
		if !r.OK && !r.Optional && r.Fix != "" {
			fmt.Fprintf(w, "\t\tfix:\t%s\n", oneLine(r.Fix))
		}
	}
}

func (a *app) getenv(k string) string {
	if a.io.Getenv != nil {
		return a.io.Getenv(k)
	}
	return os.Getenv(k)
}

// checkSSH: BYO clusters given no --ssh-key use the agent or the default keys.
func (a *app) checkSSH(ctx context.Context) []checkResult {
	r := checkResult{Area: "ssh", Name: "agent or default keys"}
	var found []string
	if sock := a.getenv("SSH_AUTH_SOCK"); sock != "" {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := d.DialContext(dctx, "unix", sock)
		cancel()
		if err == nil {
			keys, err := agent.NewClient(conn).List()
			conn.Close()
			switch {
			case err != nil:
				found = append(found, "agent at "+sock+" (cannot list keys: "+err.Error()+")")
			case len(keys) == 0:
				found = append(found, "agent at "+sock+" (no keys loaded; `ssh-add`)")
			default:
				found = append(found, fmt.Sprintf("agent at %s with %d key(s)", sock, len(keys)))
			}
		}
	}
	home := a.getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa", "id_ed25519_sk", "id_ecdsa_sk"} {
		p := filepath.Join(home, ".ssh", k)
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		r.Detail = "no SSH agent (SSH_AUTH_SOCK) and no ~/.ssh/id_* key; byo clusters then need --ssh-key or --password-env"
		r.Fix = "create a key with `ssh-keygen -t ed25519` (and authorize it on your machines), or start an agent: `eval $(ssh-agent) && ssh-add`"
		return []checkResult{r}
	}
	r.OK, r.Detail = true, strings.Join(found, "; ")
	return []checkResult{r}
}
