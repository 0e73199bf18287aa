package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/natsembed"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/services/registry"
	"github.com/rhq/rh/services/sshgateway"
)

const (
	// fanOut is the size of the big cluster.
	fanOut = 8
	// soloCluster and fanCluster name the 1-node and the 8-node BYO clusters.
	soloCluster = "solo"
	fanCluster  = "eight"
	// loginCluster names the 1-node cluster on the node that logs in as the
	// user running the benchmarks (ownLogin).
	loginCluster = "mine"
	// tempPrefix starts the name of the benchmark's temp dir, followed by
	// the owner's pid, so a later run can remove what a killed one left.
	tempPrefix = "rhbench-"
	// benchVersion is the version baked into the rhcli built for the run,
	// and the agent version the gateway installs (~/.rh/bin/rhcli-bench).
	benchVersion = "bench"
)

// env is the world every benchmark shares, built on first use: sshd nodes,
// one or two rh stacks over them, OpenSSH client configs and an rhcli binary.
type env struct {
	dir   string // root temp dir; everything the run writes is under it
	port  int    // every node's sshd port (distinct 127.0.0.x addresses)
	user  string // login user on the nodes
	nodes []*sshnode.Node

	keyPath       string // the user key, authorized on every node
	authorizedKey string // its authorized_keys line
	secrets       *rh.Secrets
	sshConfig     string // OpenSSH config: a new connection every time
	sshConfigCM   string // OpenSSH config: ControlMaster, connections kept
	rhcli         string // rhcli built for this run

	// login is a ninth node reached as the user running the benchmarks, nil
	// when that is the nodes' plain user already.
	login *ownLogin

	// stacks[0] is the gateway as shipped (with the node agent when the
	// gateway has one); stacks[1], present only then, runs without it.
	stacks []*stack
	agent  bool // stacks[0] runs the node agent

	treeOnce sync.Once
	tree     string // local 5,000-file tree
	treeErr  error

	bigOnce  sync.Once
	big      string // local 1 GiB file
	bigErr   error
	bigMtime time.Time
	changes  *rand.ChaCha8 // content of the changes to big
}

// ownLogin is a node that logs in as the user running the benchmarks, with
// that user's own shell and rc files: on a development box, or a GPU box
// whose login starts conda or pyenv, every `ssh host cmd` pays for that rc,
// and the plain user's light shell would hide it. Issue 13's start-up goal
// was set against such a login (the nodes logged in as root then).
type ownLogin struct {
	user        string
	port        int
	node        *sshnode.Node
	sshConfigCM string // ControlMaster config for user@node
}

// stack is one rh deployment: embedded NATS, registry and sshgateway, with
// the solo and eight clusters Up.
type stack struct {
	suffix string // sub-benchmark name suffix: "" or "-noagent"
	url    string // NATS URL for rhcli --nats
	cl     *client.Client
}

// cleanups runs teardown steps in reverse order, once, also when the run is
// interrupted; a step added after that runs at once. A second run waits for
// the first to finish, so the process never exits halfway through.
type cleanups struct {
	mu     sync.Mutex
	steps  []cleanup
	closed bool
	once   sync.Once
}

type cleanup struct {
	what string
	fn   func()
}

func (c *cleanups) add(what string, fn func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		fn()
		return
	}
	c.steps = append(c.steps, cleanup{what, fn})
	c.mu.Unlock()
}

func (c *cleanups) run() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		steps := c.steps
		c.steps = nil
		c.mu.Unlock()
		for i := len(steps) - 1; i >= 0; i-- {
			start := time.Now()
			steps[i].fn()
			if d := time.Since(start); d > 2*time.Second {
				progress("teardown: %s took %s", steps[i].what, d.Round(time.Millisecond))
			}
		}
	})
}

var (
	teardown cleanups
	world    *env
	worldErr error
	setupOne sync.Once
)

// shared returns the benchmark world, building it on first use.
func shared(b *testing.B) *env {
	b.Helper()
	setupOne.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		world, worldErr = setup(ctx)
	})
	if worldErr != nil {
		b.Fatal(worldErr)
	}
	return world
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func setup(ctx context.Context) (*env, error) {
	removeLeftovers()
	sshnode.CleanupLeftovers(ctx)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	teardown.add("remove "+dir, func() { _ = os.RemoveAll(dir) })
	e := &env{dir: dir, agent: agentAvailable()}
	// The nodes log in as a plain user (sshnode.DefaultUser): it must reach
	// dir and own what the benchmarks write on the nodes, remote.
	if e.user, err = sshnode.EnsureDefaultUser(ctx); err != nil {
		return nil, err
	}
	u, err := user.Lookup(e.user)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	for _, d := range []string{"local", "remote"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "remote"), uid, gid); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	progress("building rhcli")
	if e.rhcli, err = buildRHCLI(ctx, dir); err != nil {
		return nil, err
	}

	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		return nil, err
	}
	e.keyPath = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(e.keyPath, key.PrivatePEM, 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e.secrets = &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)}
	e.authorizedKey = key.AuthorizedKey
	if e.agent {
		// The gateway installs the agent in the node user's home (the real
		// one: the nodes are this machine). Registered before the nodes, so
		// it runs after they, and the agents they ran, are gone.
		bin := filepath.Join(u.HomeDir, ".rh", "bin", "rhcli-"+benchVersion)
		teardown.add("remove "+bin, func() { _ = os.Remove(bin) })
	}
	progress("starting %d sshd nodes", fanOut)
	if err := e.startNodes(ctx, key); err != nil {
		return nil, err
	}
	if err := e.writeSSHConfigs(); err != nil {
		return nil, err
	}
	if err := e.startLoginNode(ctx, key); err != nil {
		return nil, err
	}

	modes := []bool{e.agent}
	if e.agent {
		modes = append(modes, false)
	}
	for _, agentOn := range modes {
		s := &stack{}
		if e.agent && !agentOn {
			s.suffix = "-noagent"
		}
		progress("starting NATS, registry and sshgateway (agent: %v)", agentOn)
		if err := e.startStack(ctx, s, agentOn); err != nil {
			return nil, err
		}
		e.stacks = append(e.stacks, s)
	}
	return e, nil
}

// removeLeftovers deletes the temp dirs of benchmark runs that died without
// cleaning up (their sshd nodes are sshnode.CleanupLeftovers' business).
func removeLeftovers() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, m := range matches {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(m), tempPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(m)
		}
	}
}

// buildRHCLI builds the CLI a user would run (static, as `make build` does).
func buildRHCLI(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("bench: building rhcli needs the go command: %w", err)
	}
	out := filepath.Join(dir, "rhcli")
	ldflags := "-s -w -X github.com/rhq/rh/internal/cli.Version=" + benchVersion +
		" -X github.com/rhq/rh/internal/agent.Version=" + benchVersion
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", ldflags, "-o", out, "github.com/rhq/rh/cmd/rhcli")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build rhcli: %w\n%s", err, b)
	}
	return out, nil
}

// startNodes starts the sshd nodes on one port, as a cluster's machines all
// listen on 22. A port taken on some address is retried on another.
func (e *env) startNodes(ctx context.Context, key *sshnode.UserKey) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	e.port = port
	e.nodes = make([]*sshnode.Node, fanOut)
	errs := make([]error, fanOut)
	var wg sync.WaitGroup
	for i := range e.nodes {
		wg.Go(func() {
			n, err := sshnode.Start(ctx, sshnode.Options{AuthorizedKeys: []string{key.AuthorizedKey}, Port: port})
			if err != nil {
				errs[i] = err
				return
			}
			e.nodes[i] = n
			teardown.add("stop node "+n.Addr(), func() { _ = n.Close() })
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeSSHConfigs writes the two OpenSSH client configs. With -F, ssh reads
// neither ~/.ssh/config nor /etc/ssh/ssh_config, and with the settings below
// it writes nothing under ~/.ssh either.
func (e *env) writeSSHConfigs() error {
	common := fmt.Sprintf(`Host *
  User %s
  Port %d
  IdentityFile %s
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
`, e.user, e.port, e.keyPath)
	e.sshConfig = filepath.Join(e.dir, "ssh_config")
	fresh := common + "  ControlMaster no\n  ControlPath none\n"
	if err := os.WriteFile(e.sshConfig, []byte(fresh), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	// ControlPersist is idle time; every case warms its masters up first.
	e.sshConfigCM = filepath.Join(e.dir, "ssh_config_cm")
	cm := common + fmt.Sprintf("  ControlMaster auto\n  ControlPath %s\n  ControlPersist 120\n", filepath.Join(e.dir, "cm-%C"))
	if err := os.WriteFile(e.sshConfigCM, []byte(cm), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	teardown.add("close ControlMasters", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range e.nodes {
			_ = exec.CommandContext(ctx, "ssh", "-F", e.sshConfigCM, "-O", "exit", n.Addr()).Run()
		}
	})
	return nil
}

// startLoginNode starts the ownLogin node when the user running the
// benchmarks is not the nodes' plain user, with a ControlMaster config of
// its own. Its agent goes to that user's ~/.rh/bin, removed at the end.
func (e *env) startLoginNode(ctx context.Context, key *sshnode.UserKey) error {
	me, err := user.Current()
	if err != nil || me.Username == e.user {
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	if e.agent {
		bin := filepath.Join(me.HomeDir, ".rh", "bin", "rhcli-"+benchVersion)
		teardown.add("remove "+bin, func() { _ = os.Remove(bin) })
	}
	progress("starting a node that logs in as %s, with %s's own shell and rc files", me.Username, me.Username)
	n, err := sshnode.Start(ctx, sshnode.Options{
		User: me.Username, AuthorizedKeys: []string{key.AuthorizedKey}, Port: port, ClearStaleShellLock: true,
	})
	if err != nil {
		return fmt.Errorf("bench: login node: %w", err)
	}
	teardown.add("stop node "+n.Addr(), func() { _ = n.Close() })
	l := &ownLogin{user: me.Username, port: port, node: n, sshConfigCM: filepath.Join(e.dir, "ssh_config_cm_login")}
	cm, err := os.ReadFile(e.sshConfigCM)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cm = []byte(strings.Replace(strings.Replace(string(cm),
		fmt.Sprintf("  User %s\n", e.user), fmt.Sprintf("  User %s\n", l.user), 1),
		fmt.Sprintf("  Port %d\n", e.port), fmt.Sprintf("  Port %d\n", port), 1))
	if err := os.WriteFile(l.sshConfigCM, cm, 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	teardown.add("close the login node's ControlMaster", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = exec.CommandContext(ctx, "ssh", "-F", l.sshConfigCM, "-O", "exit", n.Addr()).Run()
	})
	e.login = l
	return nil
}

// startStack starts NATS, the registry and the gateway, creates the solo and
// eight clusters and waits until both are Up.
func (e *env) startStack(ctx context.Context, s *stack, agentOn bool) error {
	name := "nats" + s.suffix
	ns, err := natsembed.Start(natsembed.Options{
		StoreDir: filepath.Join(e.dir, name), Listen: "127.0.0.1:0", MaxStore: 1 << 30, MaxMemory: 64 << 20,
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	teardown.add("stop NATS"+s.suffix, ns.Shutdown)
	s.url = ns.ClientURL()
	nc, err := nats.Connect(s.url, nats.Name("rh-bench"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	teardown.add("close NATS connection"+s.suffix, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := events.Setup(ctx, js, events.DefaultLimits()); err != nil {
		return fmt.Errorf("bench: %w", err)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg, err := registry.Start(ctx, nc, registry.Config{Logger: log, ReconcileEvery: time.Hour})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	teardown.add("stop registry"+s.suffix, reg.Stop)
	gwCfg := sshgateway.Config{
		Logger:  log,
		HomeDir: filepath.Join(e.dir, "gateway-home"), // not the user's ~/.ssh keys
		// RH_SSH_AGENT=off compares against plain sessions.
		DisableAgent: os.Getenv("RH_SSH_AGENT") == "off",
		// The warm cases must stay warm across the long file cases.
		IdleTimeout: time.Hour,
		// Generous: other work may share the machine's cores.
		ConnectTimeout: time.Minute,
		ProbeTimeout:   2 * time.Minute,
	}
	if err := configureAgent(&gwCfg, agentOn, e.rhcli, benchVersion); err != nil {
		return err
	}
	gw, err := sshgateway.Start(ctx, nc, gwCfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	teardown.add("stop sshgateway"+s.suffix, gw.Stop)
	if s.cl, err = client.New(nc, time.Minute); err != nil {
		return fmt.Errorf("bench: %w", err)
	}

	ips := make([]string, len(e.nodes))
	for i, n := range e.nodes {
		ips[i] = n.Addr()
	}
	// One cluster at a time: on a busy machine, probing nine connections
	// while agents are being placed can outlast the probe timeout.
	type byoCluster struct {
		name string
		ips  []string
		user string
		port int
	}
	clusters := []byoCluster{{soloCluster, ips[:1], e.user, e.port}, {fanCluster, ips, e.user, e.port}}
	if e.login != nil && s.suffix == "" { // the stack as shipped
		clusters = append(clusters, byoCluster{loginCluster, []string{e.login.node.Addr()}, e.login.user, e.login.port})
	}
	for _, c := range clusters {
		spec := rh.Spec{BYO: &rh.BYOSpec{IPs: c.ips, SSHUser: c.user, SSHPort: c.port}}
		if _, err := s.cl.Create(ctx, c.name, spec, e.secrets); err != nil {
			return fmt.Errorf("bench: create %s: %w", c.name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		_, err := s.cl.WaitPhase(wctx, c.name, rh.PhaseUp)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: cluster %s: %w", c.name, err)
		}
		if agentOn {
			if err := waitAgents(ctx, s, c.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// command runs a program to completion and returns its stdout; a failure
// carries stderr.
func command(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
