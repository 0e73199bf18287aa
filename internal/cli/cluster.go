package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
)

func (a *app) clusterCmd() *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Create, inspect and tear down clusters"}
	// Every `cluster` subcommand, in one list (help sorts them).
	c.AddCommand(
		a.createCmd(),
		a.listCmd(),
		a.getCmd(),
		a.statusCmd(),
		a.upCmd(),
		a.teardownCmd(),
		a.deleteCmd(),
		a.autostopCmd(),
		a.eventsCmd(),
		a.trustCmd(),
		a.restartAgentCmd(),
		a.shareCmd(),
		a.unshareCmd(),
	)
	return c
}

// createFlags are the flags of `cluster create`; every one maps to a spec field.
type createFlags struct {
	file, kind string
	wait, noUp bool
	autostop   int

	ips                             []string
	sshUser, sshKey, passwordEnv    string
	sshPort                         int
	proxyCommand, jumpHost          string
	insecureIgnoreHostKey, useAgent bool

	instanceType, provider, region, imageID, memory string
	numInstances, diskSize                          int
	useSpot                                         bool
	openPorts                                       []int

	role, profile, imageURI, estimator, jobName string
	connectionWait                              int
}

func (a *app) createCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create NAME [flags] | -f cluster.yaml",
		Short: "Create a cluster (kind inferred from the flags, or --kind)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.noUp && f.wait {
				return rh.Invalid("--wait", "cannot be combined with --no-up: nothing is launched to wait for")
			}
			name, spec, secrets, err := a.buildCreate(cmd, &f, args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, err := a.connect(ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			create := cl.Create
			if f.noUp {
				create = cl.Define
			}
			c, err := create(ctx, name, spec, secrets)
			if err != nil {
				return err
			}
			if f.wait && !f.noUp {
				c, err = a.waitUp(ctx, cl, c)
				if err != nil {
					return err
				}
			}
			if err := a.print(c, func(w io.Writer) { clusterDetail(w, c) }); err != nil {
				return err
			}
			if f.wait && c.Status.Phase != rh.PhaseUp {
				return fmt.Errorf("cluster %q is %s: %s", c.Name, c.Status.Phase, c.Status.Message)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// add defines create's flags on cmd: the shared ones, then each kind's.
func (f *createFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "cluster.yaml to create from")
	fl.StringVar(&f.kind, "kind", "", "byo, ondemand or sagemaker (default: inferred)")
	fl.BoolVar(&f.wait, "wait", false, "wait until the cluster is Up, showing progress")
	fl.BoolVar(&f.noUp, "no-up", false, "record and validate the cluster without launching anything (phase Defined); `cluster up` launches it")
	fl.IntVar(&f.autostop, "autostop-mins", -1, fmt.Sprintf("tear down after this many idle minutes (-1 never; default never, but %d for SageMaker clusters, which bill until stopped)", rh.DefaultSageMakerAutostopMins))
	fl.StringSliceVar(&f.ips, "ips", nil, "byo: addresses or host names, head first")
	fl.StringVar(&f.sshUser, "ssh-user", "", "byo: SSH user (default: your user name)")
	fl.StringVar(&f.sshKey, "ssh-key", "", "byo: private key file, read once and stored as a secret")
	fl.IntVar(&f.sshPort, "ssh-port", 0, "byo: SSH port (default 22)")
	fl.StringVar(&f.passwordEnv, "password-env", "", "byo: name of the environment variable holding the SSH password")
	fl.StringVar(&f.proxyCommand, "proxy-command", "", "byo: ProxyCommand (%h host, %p port)")
	fl.StringVar(&f.jumpHost, "jump-host", "", "byo: [user@]host[:port] to jump through")
	fl.BoolVar(&f.insecureIgnoreHostKey, "insecure-ignore-host-key", false, "byo: do not verify host keys (unsafe)")
	fl.BoolVar(&f.useAgent, "use-agent", false, "byo: authenticate with the gateway's ssh-agent")
	fl.StringVar(&f.instanceType, "instance-type", "", "m5.xlarge, A100:4, CPU:2+ (ondemand) or ml.* (sagemaker)")
	fl.IntVar(&f.numInstances, "num-instances", 0, "number of nodes (default 1)")
	fl.StringVar(&f.provider, "provider", "", "ondemand: aws|gcp|azure|lambda|kubernetes|cheapest")
	fl.StringVar(&f.region, "region", "", "cloud region")
	fl.BoolVar(&f.useSpot, "use-spot", false, "ondemand: spot instances")
	fl.StringVar(&f.imageID, "image-id", "", "ondemand: machine or docker image")
	fl.StringVar(&f.memory, "memory", "", "ondemand: memory in GiB (32 or 32+)")
	fl.IntVar(&f.diskSize, "disk-size", 0, "ondemand: disk size in GiB")
	fl.IntSliceVar(&f.openPorts, "open-ports", nil, "ondemand: ports to open")
	fl.StringVar(&f.role, "role", "", "sagemaker: IAM role name or ARN")
	fl.StringVar(&f.profile, "profile", "", "sagemaker: AWS profile")
	fl.StringVar(&f.imageURI, "image-uri", "", "sagemaker: training image")
	fl.IntVar(&f.connectionWait, "connection-wait-time", 0, "sagemaker: seconds the job waits for a connection")
	fl.StringVar(&f.estimator, "estimator", "", "sagemaker: estimator file (YAML or JSON)")
	fl.StringVar(&f.jobName, "job-name", "", "sagemaker: training job name")
}

// clusterFile is cluster.yaml: a spec plus the name, and secrets by reference.
type clusterFile struct {
	Name string `json:"name"`
	rh.Spec
	SSHKey        string `json:"ssh_key,omitempty"`      // path of a private key
	PasswordEnv   string `json:"password_env,omitempty"` // environment variable holding a password
	EstimatorFile string `json:"estimator_file,omitempty"`
}

// createRefs name where create's secrets and estimator come from: a flag,
// else cluster.yaml. They are read only after the spec is built.
type createRefs struct {
	keyPath, passwordEnv, estimatorPath string
}

// buildCreate turns create's flags and file into a validated request: the
// shared parts (file, name, kind, autostop), then each kind's section, then
// the secrets. A kind's section is filled when one of its flags is set or
// the kind is named; the kind itself may still be inferred by Normalize.
func (a *app) buildCreate(cmd *cobra.Command, f *createFlags, args []string) (string, rh.Spec, *rh.Secrets, error) {
	set := cmd.Flags().Changed
	name, spec, refs, err := f.base(set, args)
	if err != nil {
		return "", spec, nil, err
	}
	secrets := &rh.Secrets{}
	byo, od, sm := f.kinds(set, refs, spec.Kind)
	if byo {
		if err := a.byoSection(&spec, f, set, refs, secrets); err != nil {
			return "", spec, nil, err
		}
	}
	if od {
		f.onDemandSection(&spec, set)
	}
	if sm {
		if err := f.sageMakerSection(&spec, set, refs.estimatorPath); err != nil {
			return "", spec, nil, err
		}
	}
	if err := a.readSecrets(refs, secrets); err != nil {
		return "", spec, nil, err
	}
	if err := rh.ValidateName(name); err != nil {
		return "", spec, nil, err
	}
	norm := spec
	norm.Normalize()
	if err := norm.Validate(); err != nil {
		return "", spec, nil, err
	}
	if secrets.Empty() {
		secrets = nil
	}
	return name, spec, secrets, nil
}

// base reads the parts every kind shares: cluster.yaml, the name, --kind
// and --autostop-mins. Flags win over the file.
func (f *createFlags) base(set func(string) bool, args []string) (string, rh.Spec, createRefs, error) {
	var name string
	var spec rh.Spec
	refs := createRefs{keyPath: f.sshKey, passwordEnv: f.passwordEnv, estimatorPath: f.estimator}
	if f.file != "" {
		cf, err := readClusterFile(f.file)
		if err != nil {
			return "", spec, refs, err
		}
		name, spec = cf.Name, cf.Spec
		refs.keyPath = cmp.Or(refs.keyPath, cf.SSHKey)
		refs.passwordEnv = cmp.Or(refs.passwordEnv, cf.PasswordEnv)
		refs.estimatorPath = cmp.Or(refs.estimatorPath, cf.EstimatorFile)
	}
	if len(args) == 1 {
		if name != "" && name != args[0] {
			return "", spec, refs, rh.Invalid("name", "%q on the command line differs from %q in %s", args[0], name, f.file)
		}
		name = args[0]
	}
	if name == "" {
		return "", spec, refs, rh.Invalid("name", "must be given (rhcli cluster create NAME, or name: in the file)")
	}
	if f.kind != "" {
		k, err := rh.ParseKind(f.kind)
		if err != nil {
			return "", spec, refs, err
		}
		spec.Kind = k
	}
	if set("autostop-mins") {
		spec.AutostopMins = new(f.autostop)
	}
	return name, spec, refs, nil
}

// kinds says which sections the flags fill. --instance-type and --region
// are shared by ondemand and sagemaker: an ml.* instance type, or any
// sagemaker-only flag, sends them to sagemaker.
func (f *createFlags) kinds(set func(string) bool, refs createRefs, kind rh.Kind) (byo, ondemand, sagemaker bool) {
	byo = kind == rh.KindBYO || set("ips") || set("ssh-user") || set("ssh-port") || set("proxy-command") || set("jump-host") ||
		set("insecure-ignore-host-key") || set("use-agent") || refs.keyPath != "" || refs.passwordEnv != ""
	sagemaker = kind == rh.KindSageMaker || set("role") || set("profile") || set("image-uri") || set("connection-wait-time") ||
		refs.estimatorPath != "" || set("job-name") || strings.HasPrefix(f.instanceType, "ml.")
	ondemand = !sagemaker && (kind == rh.KindOnDemand || set("instance-type") || set("provider") || set("use-spot") ||
		set("image-id") || set("memory") || set("disk-size") || set("open-ports"))
	return byo, ondemand, sagemaker
}

// byoSection fills spec.BYO from the byo flags, resolves ~/.ssh/config
// aliases in the addresses (which may add the config's key to secrets) and
// defaults the user to $USER.
func (a *app) byoSection(spec *rh.Spec, f *createFlags, set func(string) bool, refs createRefs, secrets *rh.Secrets) error {
	if spec.BYO == nil {
		spec.BYO = &rh.BYOSpec{}
	}
	b := spec.BYO
	if set("ips") {
		b.IPs = f.ips
	}
	if set("ssh-user") {
		b.SSHUser = f.sshUser
	}
	if set("ssh-port") {
		if f.sshPort < 1 || f.sshPort > 65535 {
			return rh.Invalid("byo.ssh_port", "%d is not a port (1-65535)", f.sshPort)
		}
		b.SSHPort = f.sshPort
	}
	if set("proxy-command") {
		b.ProxyCommand = f.proxyCommand
	}
	if set("jump-host") {
		b.JumpHost = f.jumpHost
	}
	if set("insecure-ignore-host-key") {
		b.InsecureIgnoreHostKey = f.insecureIgnoreHostKey
	}
	if set("use-agent") {
		b.UseAgent = f.useAgent
	}
	given := byoFlagsSet{user: b.SSHUser != "", port: b.SSHPort != 0, proxy: b.ProxyCommand != "", jump: b.JumpHost != "", key: refs.keyPath != ""}
	if err := resolveSSHAliases(b, sshConfigPath(a.io.Getenv), given, secrets); err != nil {
		return err
	}
	if b.SSHUser == "" {
		b.SSHUser = a.io.Getenv("USER")
	}
	return nil
}

// onDemandSection fills spec.OnDemand from the ondemand flags.
func (f *createFlags) onDemandSection(spec *rh.Spec, set func(string) bool) {
	if spec.OnDemand == nil {
		spec.OnDemand = &rh.OnDemandSpec{}
	}
	o := spec.OnDemand
	if set("instance-type") {
		o.InstanceType = f.instanceType
	}
	if set("num-instances") {
		o.NumInstances = f.numInstances
	}
	if set("provider") {
		o.Provider = f.provider
	}
	if set("region") {
		o.Region = f.region
	}
	if set("use-spot") {
		o.UseSpot = f.useSpot
	}
	if set("image-id") {
		o.ImageID = f.imageID
	}
	if set("memory") {
		o.Memory = f.memory
	}
	if set("disk-size") {
		o.DiskSize = f.diskSize
	}
	if set("open-ports") {
		o.OpenPorts = f.openPorts
	}
}

// sageMakerSection fills spec.SageMaker from the sagemaker flags and reads
// the estimator file, whose content goes in the spec.
func (f *createFlags) sageMakerSection(spec *rh.Spec, set func(string) bool, estimatorPath string) error {
	if spec.SageMaker == nil {
		spec.SageMaker = &rh.SageMakerSpec{}
	}
	m := spec.SageMaker
	if set("instance-type") {
		m.InstanceType = f.instanceType
	}
	if set("num-instances") {
		m.NumInstances = f.numInstances
	}
	if set("role") {
		m.Role = f.role
	}
	if set("profile") {
		m.Profile = f.profile
	}
	if set("region") {
		m.Region = f.region
	}
	if set("image-uri") {
		m.ImageURI = f.imageURI
	}
	if set("connection-wait-time") {
		m.ConnectionWaitTime = f.connectionWait
	}
	if set("job-name") {
		m.JobName = f.jobName
	}
	if estimatorPath != "" {
		b, err := os.ReadFile(estimatorPath)
		if err != nil {
			return rh.Invalid("--estimator", "cannot read %s: %v", estimatorPath, err)
		}
		m.Estimator = string(b)
	}
	return nil
}

// readSecrets reads the key file and the password's environment variable
// into secrets; a key given here wins over one from ~/.ssh/config.
func (a *app) readSecrets(refs createRefs, secrets *rh.Secrets) error {
	if refs.keyPath != "" {
		b, err := os.ReadFile(expandHome(refs.keyPath, a.io.Getenv))
		if err != nil {
			return rh.Invalid("--ssh-key", "cannot read %s: %v", refs.keyPath, err)
		}
		if !bytes.Contains(b, []byte("PRIVATE KEY")) {
			return rh.Invalid("--ssh-key", "%s is not a PEM or OpenSSH private key", refs.keyPath)
		}
		secrets.SSHPrivateKey = string(b)
	}
	if refs.passwordEnv != "" {
		pw := a.io.Getenv(refs.passwordEnv)
		if pw == "" {
			return rh.Invalid("--password-env", "environment variable %s is empty or not set", refs.passwordEnv)
		}
		secrets.Password = pw
	}
	return nil
}

func readClusterFile(path string) (*clusterFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, rh.Invalid("--file", "cannot read %s: %v", path, err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, rh.Invalid("--file", "%s is not YAML: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var cf clusterFile
	if err := dec.Decode(&cf); err != nil {
		return nil, rh.Invalid("--file", "%s: %v", path, err)
	}
	return &cf, nil
}

func expandHome(p string, getenv func(string) string) string {
	if strings.HasPrefix(p, "~/") {
		return getenv("HOME") + p[1:]
	}
	return p
}

// waitUp follows the cluster until it is Up (or fails), showing each phase
// change on a terminal.
func (a *app) waitUp(ctx context.Context, cl *client.Client, c *rh.Cluster) (*rh.Cluster, error) {
	return a.waitPhase(ctx, cl, c, rh.PhaseUp)
}

func (a *app) waitPhase(ctx context.Context, cl *client.Client, c *rh.Cluster, want rh.Phase) (*rh.Cluster, error) {
	show := a.interactive()
	start := time.Now()
	last := rh.Phase("")
	lastMsg := ""
	return cl.WaitFor(ctx, c.Name, func(cur *rh.Cluster) bool {
		if cur.Incarnation < c.Incarnation {
			return false
		}
		if show && (cur.Status.Phase != last || cur.Status.Message != lastMsg) {
			fmt.Fprintf(a.io.Err, "%6.1fs  %-12s %s\n", time.Since(start).Seconds(), cur.Status.Phase, oneLine(cur.Status.Message))
			last, lastMsg = cur.Status.Phase, cur.Status.Message
		}
		switch {
		case cur.Status.Phase == want, cur.Status.Phase.Final():
			return true
		case want == rh.PhaseUp && cur.Status.Phase == rh.PhaseDegraded:
			// Up with some nodes unreachable: waiting longer would not change that.
			return true
		}
		return false
	})
}

func (a *app) withClient(fn func(ctx context.Context, cl *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, err := a.connect(ctx)
		if err != nil {
			return err
		}
		defer cl.Close()
		return fn(ctx, cl, args)
	}
}

func (a *app) listCmd() *cobra.Command {
	var kinds, phases []string
	var watch bool
	cmd := &cobra.Command{
		Use: "list [--kind K]... [--phase P]... [--watch]", Short: "List clusters, optionally only some kinds or phases", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked before connecting: a typo exits 2 without a round trip.
			keep, err := listFilter(kinds, phases)
			if err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
				if watch {
					return a.watchList(ctx, cl, keep)
				}
				all, err := cl.List(ctx)
				if err != nil {
					return err
				}
				cs := []rh.ClusterSummary{}
				for _, c := range all {
					if keep(c) {
						cs = append(cs, c)
					}
				}
				return a.print(cs, func(w io.Writer) { clusterTable(w, cs) })
			})(cmd, args)
		},
	}
	cmd.Flags().StringSliceVar(&kinds, "kind", nil, "only clusters of these kinds: "+joinValues(rh.Kinds)+" (repeatable or comma-separated)")
	cmd.Flags().StringSliceVar(&phases, "phase", nil, "only clusters in these phases: "+joinValues(rh.Phases)+" (repeatable or comma-separated)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after the list, print a line per change until Ctrl-C")
	return cmd
}

// listFilter checks `cluster list`'s --kind and --phase values (case does
// not matter) and returns what keeps a summary: any of the kinds given, and
// any of the phases given. The registry lists everything the caller may
// see; filtering here keeps the API as it is.
func listFilter(kinds, phases []string) (func(rh.ClusterSummary) bool, error) {
	var ks []rh.Kind
	for _, s := range kinds {
		k, ok := matchValue(rh.Kinds, s)
		if !ok {
			return nil, rh.Invalid("--kind", "%q is not one of %s", s, joinValues(rh.Kinds))
		}
		ks = append(ks, k)
	}
	var ps []rh.Phase
	for _, s := range phases {
		p, ok := matchValue(rh.Phases, s)
		if !ok {
			return nil, rh.Invalid("--phase", "%q is not one of %s", s, joinValues(rh.Phases))
		}
		ps = append(ps, p)
	}
	return func(c rh.ClusterSummary) bool {
		return (len(ks) == 0 || slices.Contains(ks, c.Kind)) && (len(ps) == 0 || slices.Contains(ps, c.Phase))
	}, nil
}

// matchValue finds s among values, ignoring case and surrounding spaces.
func matchValue[T ~string](values []T, s string) (T, bool) {
	for _, v := range values {
		if strings.EqualFold(string(v), strings.TrimSpace(s)) {
			return v, true
		}
	}
	return "", false
}

func joinValues[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func (a *app) getCmd() *cobra.Command {
	return &cobra.Command{
		Use: "get NAME", Short: "Show a cluster's record", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			c, err := cl.Get(ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(c, func(w io.Writer) { clusterDetail(w, c) })
		}),
	}
}

func (a *app) statusCmd() *cobra.Command {
	var refresh bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: "status NAME", Short: "Show a cluster's status and nodes", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			var c *rh.Cluster
			var err error
			if refresh {
				rctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				c, err = cl.Refresh(rctx, args[0])
				if err != nil && rctx.Err() != nil && c != nil {
					fmt.Fprintf(a.io.Err, "rhcli: no fresh report within %s; showing the last known status\n", timeout)
					err = nil
				}
			} else {
				c, err = cl.Get(ctx, args[0])
			}
			if err != nil {
				return err
			}
			var live *api.LiveReply
			if c.Status.Phase.Live() {
				live = liveStatus(ctx, cl, args[0])
			}
			return a.print(statusView{Status: c.Status, Live: live}, func(w io.Writer) {
				clusterDetail(w, c)
				if live != nil {
					liveDetail(w, live)
				}
			})
		}),
	}
	cmd.Flags().BoolVar(&refresh, "refresh", false, "ask the worker to observe the cluster now")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long --refresh waits for a report")
	return cmd
}

func (a *app) upCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use: "up NAME", Short: "Bring a cluster up (again)", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			c, err := cl.Up(ctx, args[0])
			if err != nil {
				return err
			}
			if wait {
				if c, err = a.waitUp(ctx, cl, c); err != nil {
					return err
				}
			}
			if err := a.print(c, func(w io.Writer) { clusterDetail(w, c) }); err != nil {
				return err
			}
			if wait && c.Status.Phase != rh.PhaseUp {
				return fmt.Errorf("cluster %q is %s: %s", c.Name, c.Status.Phase, c.Status.Message)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the cluster is Up")
	return cmd
}

func (a *app) teardownCmd() *cobra.Command {
	var wait, del bool
	cmd := &cobra.Command{
		Use: "teardown NAME", Short: "Release a cluster's machines (yours are never touched)", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			c, err := cl.Teardown(ctx, args[0])
			if err != nil {
				return err
			}
			if wait || del {
				if c, err = a.waitPhase(ctx, cl, c, rh.PhaseTerminated); err != nil {
					return err
				}
				if c.Status.Phase != rh.PhaseTerminated {
					return fmt.Errorf("cluster %q is %s: %s", c.Name, c.Status.Phase, c.Status.Message)
				}
			}
			if del {
				// Only once the machines are released: nothing is left
				// running that the record would have told about.
				if err := cl.Delete(ctx, args[0], false); err != nil {
					return err
				}
				return a.print(map[string]string{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "torn down and deleted %s\n", args[0]) })
			}
			return a.print(c, func(w io.Writer) { clusterDetail(w, c) })
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the cluster is Terminated")
	cmd.Flags().BoolVar(&del, "delete", false, "wait for the teardown, then delete the cluster (Runhouse's teardown_and_delete)")
	return cmd
}

func (a *app) deleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "delete NAME", Short: "Forget a terminated cluster", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			if err := cl.Delete(ctx, args[0], force); err != nil {
				return err
			}
			return a.print(map[string]string{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "deleted %s\n", args[0]) })
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even if machines may still exist")
	return cmd
}

func (a *app) autostopCmd() *cobra.Command {
	return &cobra.Command{
		Use: "autostop NAME MINUTES", Short: "Tear the cluster down after MINUTES idle (-1 never)", Args: exactArgs(2, "NAME", "MINUTES"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			var mins int
			if _, err := fmt.Sscan(args[1], &mins); err != nil {
				return rh.Invalid("MINUTES", "%q is not a whole number", args[1])
			}
			c, err := cl.SetAutostop(ctx, args[0], mins)
			if err != nil {
				return err
			}
			return a.print(c, func(w io.Writer) { clusterDetail(w, c) })
		}),
	}
}

func (a *app) eventsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "events NAME", Short: "Show a cluster's history of transitions", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			hist, err := cl.History(ctx, args[0])
			if err != nil {
				return err
			}
			if !follow {
				return a.print(hist, func(w io.Writer) {
					fmt.Fprintln(w, "TIME\tGEN\tTRANSITION\tSOURCE\tMESSAGE")
					for _, t := range hist {
						transitionLine(w, t)
					}
				})
			}
			return a.followEvents(ctx, cl, args[0], hist)
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing transitions as they happen")
	return cmd
}

func (a *app) followEvents(ctx context.Context, cl *client.Client, name string, hist []rh.Transition) error {
	emit := func(t rh.Transition) error {
		if a.output == "table" {
			tw := newLineWriter(a.io.Out)
			transitionLine(tw, t)
			return tw.Flush()
		}
		return a.print(t, nil)
	}
	if a.output == "table" {
		fmt.Fprintln(a.io.Out, "TIME                     GEN  TRANSITION  SOURCE  MESSAGE")
	}
	seen := 0
	var lastAt time.Time
	for _, t := range hist {
		if err := emit(t); err != nil {
			return err
		}
		seen++
		lastAt = t.At
	}
	ch, err := cl.Watch(ctx, name)
	if err != nil {
		return err
	}
	for c := range ch {
		for _, t := range c.History {
			if t.At.After(lastAt) {
				if err := emit(t); err != nil {
					return err
				}
				lastAt = t.At
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	fmt.Fprintf(a.io.Err, "cluster %s was deleted\n", name)
	return nil
}
