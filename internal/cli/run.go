package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
)

// ExitUnreachable is rhcli run's exit code for a node where the command
// could not run (unreachable, cancelled), as ssh uses 255.
const ExitUnreachable = 255

// ExitTimedOut is rhcli run's exit code where --timeout stopped the
// command, as timeout(1) uses 124.
const ExitTimedOut = 124

type runFlags struct {
	node    string
	env     []string
	dir     string
	timeout time.Duration
	stdin   bool
}

// addStdin adds -i/--stdin, for the commands whose input a user may pipe in.
func (f *runFlags) addStdin(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&f.stdin, "stdin", "i", false,
		"pass rhcli's standard input to the command (one node), as docker exec -i; without it the command's stdin is empty")
}

func (f *runFlags) add(cmd *cobra.Command, defaultNode string) {
	fl := cmd.Flags()
	fl.StringVar(&f.node, "node", defaultNode, "where to run: all, head, a 0-based index or an address")
	fl.StringArrayVar(&f.env, "env", nil, "K=V exported to the command (repeatable)")
	fl.StringVar(&f.dir, "dir", "", "working directory on the nodes")
	fl.DurationVar(&f.timeout, "timeout", 0, "stop the command this long after it starts (e.g. 10m; exit code 124); 0 means no limit")
}

func (f *runFlags) options() (client.RunOptions, error) {
	o := client.RunOptions{Node: f.node, Dir: f.dir, Timeout: f.timeout}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return o, &flagError{fmt.Errorf("--env %q: want K=V", kv)}
		}
		if o.Env == nil {
			o.Env = map[string]string{}
		}
		o.Env[k] = v
	}
	if f.timeout < 0 {
		return o, &flagError{fmt.Errorf("--timeout %s is negative", f.timeout)}
	}
	return o, nil
}

func minArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return &flagError{fmt.Errorf("expects %s", names)}
		}
		return nil
	}
}

// runCommandHelp is `rhcli run --help`'s rule for the words after "--".
const runCommandHelp = `The words after -- mean exactly what was typed:
  - several words are one command and its arguments, each passed as typed (exec'd word for
    word by the node agent in the login environment, or quoted for the remote shell over a
    plain session), as kubectl exec and docker exec do:
        rhcli run c -- sh -c 'echo "a b"'                 prints: a b
        rhcli run c -- printf '%s|' 'a b' '$HOME' '*'    prints: a b|$HOME|*|
  - a single word is a shell command line, so pipes, &&, $VARIABLES and globs work on the node:
        rhcli run c -- 'cd src && make -j8'
        rhcli run c -- 'echo $((1+2)) > out.txt'`

func (a *app) runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run NAME [--node all|head|N|ADDR] [--env K=V]... [--timeout D] [-i] -- COMMAND [ARG...]",
		Short: "Run a command on a cluster's nodes, streaming its output",
		Long: "Run COMMAND on the chosen nodes in parallel, in the login shell as ssh would.\n\n" + runCommandHelp + "\n\n" +
			"Output streams live, each line prefixed by [node] when several nodes run. rhcli exits with the first\n" +
			"non-zero exit code in node order (124 where --timeout stopped it, as timeout(1); 255 where the command could not run). Ctrl-C stops the command on every node: SIGTERM to its process group, SIGKILL to what is left after 5 s.\n\n" +
			"The command's stdin is empty unless -i passes rhcli's own to it (one node), as the command reads it:\n" +
			"    gunzip -c data.csv.gz | rhcli run c -i -- python3 load.py",
		Args: minArgs(2, "NAME -- COMMAND [ARG...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runCommand(cmd, args[0], &f, func(ctx context.Context, cl *client.Client, o client.RunOptions) ([]client.RunResult, error) {
				return cl.RunWords(ctx, args[0], args[1:], o)
			})
		},
	}
	f.add(cmd, api.NodeHead)
	f.addStdin(cmd)
	return cmd
}

func (a *app) runPythonCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run-python NAME [--node ...] -- CODE [ARG...]",
		Short: "Run Python code (python3 -c) on a cluster's nodes",
		Long: "Run CODE with python3 -c on the chosen nodes. CODE is one word (quote it); further words are\n" +
			"passed as typed as its sys.argv[1:]:\n" +
			"    rhcli run-python c -- 'import sys; print(sys.argv[1:])' 'a b' '$HOME'   prints: ['a b', '$HOME']",
		Args: minArgs(2, "NAME -- CODE [ARG...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runCommand(cmd, args[0], &f, func(ctx context.Context, cl *client.Client, o client.RunOptions) ([]client.RunResult, error) {
				return cl.RunPython(ctx, args[0], args[1], args[2:], o)
			})
		},
	}
	f.add(cmd, api.NodeHead)
	f.addStdin(cmd)
	return cmd
}

func (a *app) installCmd() *cobra.Command {
	var f runFlags
	var requirements, conda string
	cmd := &cobra.Command{
		Use:   "install NAME [PACKAGE...] [--requirements FILE] [--conda ENV]",
		Short: "pip install packages on every node of a cluster",
		Long: "pip install PACKAGEs (python3 -m pip install) on the chosen nodes, every node by default.\n" +
			"--requirements FILE uploads a local requirements file to each node and installs it (pip -r).\n" +
			"--conda ENV installs into that conda environment (conda run -n ENV python -m pip install);\n" +
			"a node without conda on its PATH fails with exit code 127 and says so.",
		Args: minArgs(1, "NAME [PACKAGE...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 && requirements == "" {
				return &flagError{errors.New("expects NAME PACKAGE... or --requirements FILE")}
			}
			return a.runCommand(cmd, args[0], &f, func(ctx context.Context, cl *client.Client, o client.RunOptions) ([]client.RunResult, error) {
				return cl.InstallWith(ctx, args[0], args[1:], client.InstallOptions{RunOptions: o, Requirements: requirements, Conda: conda})
			})
		},
	}
	f.add(cmd, api.NodeAll)
	cmd.Flags().StringVar(&requirements, "requirements", "", "a local requirements file to upload and install (pip -r)")
	cmd.Flags().StringVar(&conda, "conda", "", "install into this conda environment (needs conda on the nodes)")
	return cmd
}

// runCommand runs a command with run (which calls the client) and turns
// the results into output and an exit code.
func (a *app) runCommand(cmd *cobra.Command, name string, f *runFlags, run func(context.Context, *client.Client, client.RunOptions) ([]client.RunResult, error)) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	o, err := f.options()
	if err != nil {
		return err
	}
	if f.stdin {
		o.Stdin = a.io.In
		if o.Stdin == nil {
			o.Stdin = os.Stdin
		}
	}
	ctx := cmd.Context()
	cl, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	var pw *prefixWriters
	switch {
	case a.output != "table":
		o.Capture = true
	default:
		// The gateway's answer names the nodes before any output: one
		// node's output passes through untouched, byte for byte; several
		// nodes' lines are prefixed. No extra request to learn the nodes.
		pw = &prefixWriters{out: a.io.Out, err: a.io.Err, bufs: map[string]*bytes.Buffer{}}
		o.OnStart = func(nodes []string) { pw.prefix = len(nodes) > 1 }
		o.OnOutput = pw.write
	}
	results, err := run(ctx, cl, o)
	if pw != nil {
		pw.flush()
	}
	if err != nil && results == nil {
		return err
	}
	if a.output != "table" {
		type jr struct {
			Node     string `json:"node"`
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
			Stderr   string `json:"stderr"`
			Error    string `json:"error,omitempty"`
			TimedOut bool   `json:"timed_out,omitempty"`
		}
		out := make([]jr, len(results))
		for i, r := range results {
			out[i] = jr(r)
		}
		if perr := a.print(out, nil); perr != nil {
			return perr
		}
	}
	for _, r := range results {
		if r.Error != "" && a.output == "table" {
			fmt.Fprintf(a.io.Err, "rhcli: %s: %s\n", r.Node, r.Error)
		}
	}
	if err != nil {
		return err // cancelled: the results so far are out
	}
	for _, r := range results {
		switch {
		case r.ExitCode == 0:
		case r.TimedOut:
			return &exitCodeError{code: ExitTimedOut}
		case r.ExitCode < 0:
			return &exitCodeError{code: ExitUnreachable}
		default:
			return &exitCodeError{code: r.ExitCode}
		}
	}
	return nil
}

// prefixWriters prints the nodes' output live. With prefix set (several
// nodes) each complete line is prefixed by [node] so interleaved nodes stay
// readable; otherwise output passes through as it came.
type prefixWriters struct {
	mu     sync.Mutex
	out    io.Writer
	err    io.Writer
	prefix bool
	bufs   map[string]*bytes.Buffer // partial line per node and stream
}

func (p *prefixWriters) write(node, stream string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.out
	if stream == "stderr" {
		w = p.err
	}
	if !p.prefix {
		_, _ = w.Write(data)
		return
	}
	key := node + "\x00" + stream
	b := p.bufs[key]
	if b == nil {
		b = &bytes.Buffer{}
		p.bufs[key] = b
	}
	b.Write(data)
	for {
		line, err := b.ReadBytes('\n')
		if err != nil { // no newline: keep the partial line
			rest := append([]byte(nil), line...)
			b.Reset()
			b.Write(rest)
			return
		}
		fmt.Fprintf(w, "[%s] %s", node, line)
	}
}

func (p *prefixWriters) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, b := range p.bufs {
		if b.Len() == 0 {
			continue
		}
		node, stream, _ := strings.Cut(key, "\x00")
		w := p.out
		if stream == "stderr" {
			w = p.err
		}
		fmt.Fprintf(w, "[%s] %s\n", node, b.Bytes())
		b.Reset()
	}
}

type syncFlags struct {
	node      string
	delete    bool
	exclude   []string
	filter    []string
	checksum  bool
	dryRun    bool
	wholeFile bool
}

func (f *syncFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.node, "node", api.NodeHead, "which nodes: all, head, a 0-based index or an address")
	fl.BoolVar(&f.delete, "delete", false, "delete what the source does not have")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "gitignore-style pattern to leave out (repeatable)")
	fl.StringArrayVarP(&f.filter, "filter", "f", nil, "rsync-style filter rule, e.g. '- *.o', '+ keep/', ':- .gitignore' (repeatable; checked before --exclude)")
	fl.BoolVarP(&f.wholeFile, "whole-file", "W", false, "send changed files whole, never only their changed blocks")
	fl.BoolVar(&f.checksum, "checksum", false, "compare contents, not size and modification time")
	fl.BoolVar(&f.dryRun, "dry-run", false, "show what would change, change nothing")
}

func (f *syncFlags) options() client.SyncOptions {
	return client.SyncOptions{Node: f.node, Delete: f.delete, Exclude: f.exclude, Filter: f.filter, Checksum: f.checksum,
		DryRun: f.dryRun, WholeFile: f.wholeFile}
}

func (a *app) putCmd() *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "put NAME LOCAL REMOTE",
		Short: "Copy local files to a cluster's nodes; only what changed moves",
		Args:  exactArgs(3, "NAME", "LOCAL", "REMOTE"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			res, err := cl.Upload(ctx, args[0], args[1], args[2], f.options())
			return a.printSync(res, err, "sent")
		}),
	}
	f.add(cmd)
	return cmd
}

func (a *app) getFilesCmd() *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "get NAME REMOTE LOCAL",
		Short: "Copy files from a cluster's nodes (several nodes: into LOCAL/<node>)",
		Args:  exactArgs(3, "NAME", "REMOTE", "LOCAL"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			res, err := cl.Download(ctx, args[0], args[1], args[2], f.options())
			return a.printSync(res, err, "received")
		}),
	}
	f.add(cmd)
	return cmd
}

func (a *app) printSync(res []client.SyncResult, err error, verb string) error {
	if res == nil && err != nil {
		return err
	}
	perr := a.print(res, func(w io.Writer) {
		for _, r := range res {
			if r.Error != "" {
				continue // the error names the node and says why
			}
			prefix := ""
			if len(res) > 1 {
				prefix = "[" + r.Node + "] "
			}
			fmt.Fprintf(w, "%s%s %s, %s", prefix, plural(int64(r.FilesSent), "file"), verb, plural(r.BytesSent, "byte"))
			if r.FilesDeleted > 0 {
				fmt.Fprintf(w, ", %d deleted", r.FilesDeleted)
			}
			fmt.Fprintln(w)
		}
	})
	if err != nil {
		return err
	}
	return perr
}

// plural is "1 file", "2 files", "0 files".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

func (a *app) trustCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "trust NAME",
		Short: "Forget the recorded host keys of a cluster's nodes (after a legitimate change), so up records the new ones",
		Args:  exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			hosts, err := cl.Trust(ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(map[string][]string{"forgotten": hosts}, func(w io.Writer) {
				if len(hosts) == 0 {
					fmt.Fprintln(w, "no host keys were recorded")
				} else {
					fmt.Fprintf(w, "forgot the host keys of %s\n", strings.Join(hosts, ", "))
				}
				fmt.Fprintf(w, "run `rhcli cluster up %s` to connect and record the keys the nodes present now\n", args[0])
			})
		}),
	}
}

func (a *app) sshCmd() *cobra.Command {
	var node string
	var trustProxy bool
	var fw sshForwards
	cmd := &cobra.Command{
		Use:   "ssh NAME [--node N] [-L|-R|-D SPEC]... [-N] [-- COMMAND...]",
		Short: "Open an interactive ssh session on a node (runs the local OpenSSH client)",
		Long: "Open an ssh session on a node with the local OpenSSH client. -L, -R and -D forward ports as\n" +
			"ssh's own do (with -N and no command: only forward); `rhcli tunnel` forwards one port without\n" +
			"OpenSSH and reconnects when the connection drops.",
		Args: minArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			opts, err := fw.args(args[1:])
			if err != nil {
				return err
			}
			info, err := cl.SSHInfo(ctx, args[0], node)
			if err != nil {
				return err
			}
			if err := checkProxyConsent(args[0], info, trustProxy); err != nil {
				return err
			}
			code, err := a.execSSH(ctx, info, opts, args[1:])
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCodeError{code: code}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&node, "node", api.NodeHead, "which node: head, a 0-based index or an address")
	cmd.Flags().BoolVar(&trustProxy, "trust-proxy-command", false, proxyConsentFlagHelp)
	fw.add(cmd)
	return cmd
}

// sshArgs builds the OpenSSH command line for info, with opts (forwards)
// before the destination. Files (the key and the pinned known_hosts) are
// written to dir, which the caller removes.
func sshArgs(info *api.ConnectReply, dir string, opts, command []string) ([]string, error) {
	args := []string{"-p", strconv.Itoa(info.Port), "-o", "GlobalKnownHostsFile=/dev/null"}
	if info.InsecureIgnoreHostKey {
		args = append(args, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
	} else {
		kh := filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(kh, []byte(strings.Join(info.KnownHosts, "\n")+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write known_hosts: %w", err)
		}
		args = append(args, "-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes")
	}
	if info.PrivateKey != "" {
		key := filepath.Join(dir, "id")
		if err := os.WriteFile(key, []byte(info.PrivateKey), 0o600); err != nil {
			return nil, fmt.Errorf("write key: %w", err)
		}
		args = append(args, "-i", key)
		if !info.UseAgent {
			args = append(args, "-o", "IdentitiesOnly=yes")
		}
	}
	if info.ProxyCommand != "" {
		args = append(args, "-o", "ProxyCommand="+info.ProxyCommand)
	} else if info.JumpHost != "" {
		args = append(args, "-J", info.JumpHost)
	}
	args = append(args, opts...)
	args = append(args, info.User+"@"+info.Host)
	if len(command) > 0 {
		// OpenSSH would join the words with spaces for the remote shell
		// to split again; the same rule as rhcli run keeps each as typed.
		args = append(args, "--", client.CommandLine(command))
	}
	return args, nil
}

func (a *app) execSSH(ctx context.Context, info *api.ConnectReply, opts, command []string) (int, error) {
	dir, err := os.MkdirTemp("", "rhcli-ssh-")
	if err != nil {
		return 0, fmt.Errorf("ssh: %w", err)
	}
	// The key file exists only while ssh runs.
	defer os.RemoveAll(dir)
	args, err := sshArgs(info, dir, opts, command)
	if err != nil {
		return 0, fmt.Errorf("ssh: %w", err)
	}
	c := exec.CommandContext(ctx, "ssh", args...)
	c.Stdin, c.Stdout, c.Stderr = a.io.In, a.io.Out, a.io.Err
	if c.Stdin == nil {
		c.Stdin = os.Stdin
	}
	// A hangup (closed terminal) or SIGQUIT would end rhcli without running
	// the deferred removal (SIGINT and SIGTERM end ctx): catch them, remove
	// the key at once and pass the signal on to ssh.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("ssh: %w", err)
	}
	done := make(chan struct{})
	var got os.Signal
	var sigWG sync.WaitGroup
	sigWG.Go(func() {
		select {
		case got = <-sigs:
			_ = os.RemoveAll(dir)
			_ = c.Process.Signal(got)
		case <-done:
		}
	})
	err = c.Wait()
	close(done)
	sigWG.Wait()
	if sig, ok := got.(syscall.Signal); ok {
		return 128 + int(sig), nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("ssh: %w", err)
	}
	return 0, nil
}
