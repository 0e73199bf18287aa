package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh/agent"

	"github.com/rhq/rh/services/sagemakerworker/sm"
	"github.com/rhq/rh/services/skyworker/skypilot"
)

// checkResult is one readiness item of `rhcli check`.
type checkResult struct {
	Area   string `json:"area"` // skypilot, ssh, sagemaker
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"` // the command or setting that makes it ready
}

// checkReport is what `rhcli check -o json` prints.
type checkReport struct {
	Ready  bool          `json:"ready"` // every item is OK
	Checks []checkResult `json:"checks"`
}

// checkers run in order; each area adds its own items, so a new kind of
// hardware adds a checker here and nothing else changes.
var checkers = []func(a *app, ctx context.Context) []checkResult{
	(*app).checkSkyPilot,
	(*app).checkSSH,
	(*app).checkSageMaker,
}

// checkCmd reports whether this machine can use each kind of cluster. It
// talks to SkyPilot and AWS, not to rh, so it works before `rhcli serve`.
// Not being ready for one kind is normal, so the exit code is 0 either way;
// scripts read "ready" from -o json.
func (a *app) checkCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check what this machine needs for on-demand (SkyPilot), BYO (SSH) and SageMaker clusters",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			rep := checkReport{Ready: true, Checks: []checkResult{}}
			for _, c := range checkers {
				for _, r := range c(a, ctx) {
					rep.Ready = rep.Ready && r.OK
					rep.Checks = append(rep.Checks, r)
				}
			}
			return a.print(rep, func(w io.Writer) { checkTable(w, rep) })
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up on checks still running after this long")
	return cmd
}

func checkTable(w io.Writer, rep checkReport) {
	fmt.Fprintln(w, "AREA\tCHECK\tSTATUS\tDETAIL")
	for _, r := range rep.Checks {
		st := "ok"
		if !r.OK {
			st = "NOT READY"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Area, r.Name, st, oneLine(r.Detail))
		if !r.OK && r.Fix != "" {
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

// knownClouds are SkyPilot's clouds as /check names them, for saying which
// ones are not enabled.
var knownClouds = []string{"AWS", "GCP", "Azure", "Lambda", "Kubernetes"}

// checkSkyPilot: does the API server answer, with which version, and which
// clouds can it use.
func (a *app) checkSkyPilot(ctx context.Context) []checkResult {
	endpoint := a.getenv(skypilot.EnvEndpoint)
	if endpoint == "" {
		endpoint = skypilot.DefaultEndpoint
	}
	api := checkResult{Area: "skypilot", Name: "api server"}
	sky, err := skypilot.New(skypilot.Config{
		Endpoint: endpoint, Token: a.getenv(skypilot.EnvToken),
		RetryBase: 100 * time.Millisecond, RetryMax: time.Second, RetryBudget: 3 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		api.Detail, api.Fix = err.Error(), "set "+skypilot.EnvEndpoint+" to the API server's URL (e.g. http://127.0.0.1:46580)"
		return []checkResult{api}
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	h, err := sky.Health(hctx)
	cancel()
	if err != nil {
		api.Detail = err.Error()
		api.Fix = "start one with `sky api start` (pip install skypilot), or set " + skypilot.EnvEndpoint + " to your team's server"
		switch {
		case strings.Contains(err.Error(), "unauthorized") || strings.Contains(err.Error(), "HTTP 401") || strings.Contains(err.Error(), "HTTP 403"):
			api.Fix = "set " + skypilot.EnvToken + " to a service-account token (sky_...) for " + endpoint
		case strings.Contains(err.Error(), "not compatible"):
			api.Fix = "upgrade the SkyPilot API server at " + endpoint + " (`pip install -U skypilot && sky api stop && sky api start`) or point " + skypilot.EnvEndpoint + " at a compatible one"
		}
		return []checkResult{api}
	}
	api.OK = true
	api.Detail = fmt.Sprintf("SkyPilot %s (API version %d) at %s", h.Version, h.APIVersion, endpoint)
	return []checkResult{api, checkClouds(ctx, sky)}
}

// checkClouds re-runs SkyPilot's credential check, as `sky check` does, so
// credentials configured since the server started count.
func checkClouds(ctx context.Context, sky *skypilot.Client) checkResult {
	r := checkResult{Area: "skypilot", Name: "clouds"}
	var enabled []string
	raw, err := sky.Check(ctx, nil)
	if err == nil {
		enabled = cloudsOf(raw)
	} else if enabled, err = sky.EnabledClouds(ctx); err != nil {
		r.Detail, r.Fix = err.Error(), "run `sky check -v` on the API server's machine"
		return r
	}
	var others []string
	for _, c := range knownClouds {
		if !slices.ContainsFunc(enabled, func(e string) bool { return strings.EqualFold(e, c) }) {
			others = append(others, c)
		}
	}
	if len(enabled) == 0 {
		r.Detail = "no cloud is enabled"
		r.Fix = "configure a cloud's credentials (`aws configure`, `gcloud auth application-default login`, `az login`, a kubeconfig), then `sky check`; `sky check -v` says why each cloud is disabled"
		return r
	}
	r.OK = true
	r.Detail = "enabled: " + strings.Join(enabled, ", ")
	if len(others) > 0 {
		r.Detail += "; not enabled: " + strings.Join(others, ", ") + " (`sky check -v` says why)"
	}
	return r
}

// cloudsOf reads /check's answer: a list of clouds, or workspace → clouds,
// depending on the server's version.
func cloudsOf(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var byWS map[string][]string
	if json.Unmarshal(raw, &byWS) != nil {
		return nil
	}
	var out []string
	for _, cs := range byWS {
		for _, c := range cs {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
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

// checkSageMaker: credentials, region and execution role, as the
// sagemakerworker would resolve them here.
func (a *app) checkSageMaker(ctx context.Context) []checkResult {
	cfg, err := sm.LoadConfig(ctx, a.getenv("AWS_PROFILE"), "")
	if err != nil {
		return []checkResult{{Area: "sagemaker", Name: "credentials", Detail: err.Error(),
			Fix: "configure AWS credentials: `aws configure`, `aws sso login`, AWS_PROFILE or --profile"}}
	}
	items := sm.NewClient(cfg, sm.Options{Logger: slog.New(slog.DiscardHandler), Getenv: a.getenv}).Check(ctx, "")
	out := make([]checkResult, 0, len(items))
	for _, it := range items {
		out = append(out, checkResult{Area: "sagemaker", Name: it.Name, OK: it.OK, Detail: it.Detail, Fix: it.Fix})
	}
	return out
}
