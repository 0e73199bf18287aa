package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// RunOptions say where and how a command runs.
type RunOptions struct {
	// Node is "head" (default), "all", a 0-based index or a node's address.
	Node string
	Env  map[string]string
	Dir  string
	// Timeout kills the command on the nodes after this long; 0 means none.
	Timeout time.Duration
	// Stdout and Stderr receive every node's output as it arrives.
	Stdout, Stderr io.Writer
	// OnOutput, if set, is called with each chunk of output and the node and
	// stream ("stdout" or "stderr") it came from, never concurrently.
	OnOutput func(node, stream string, data []byte)
	// Capture keeps the output in the results. It is implied when neither
	// writers nor OnOutput are set.
	Capture bool
	// Stdin, if set, is the command's standard input: read as the command
	// takes it, and ended when it returns EOF (or an error). Input goes to
	// one node; a run on several is refused. A Stdin that blocks (a
	// terminal) keeps one goroutine reading after Run returns.
	Stdin io.Reader
	// OnStart, if set, is called once with the labels of the nodes the
	// command runs on, in node order, before any output: a caller can choose
	// how to show output without asking for the nodes first.
	OnStart func(nodes []string)
}

// RunResult is one node's outcome. ExitCode is the command's exit status
// (128+N when killed by signal N), or -1 when it could not run to
// completion; Error then says why (unreachable node, cancelled, timed out),
// and TimedOut is set when RunOptions.Timeout stopped it.
type RunResult struct {
	Node     string `json:"node"`
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Error    string `json:"error,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// runIdle is how long a run stream may be silent: the gateway sends a
// heartbeat every few seconds, so silence this long means it is gone.
const runIdle = 30 * time.Second

// Run runs a shell command on a cluster's nodes and streams its output. It
// returns when every node finished, with one result per node in node order.
// A node that failed to run the command is reported in its result, not as
// an error; the error is for a run that could not be done or followed at all.
// When ctx ends (Ctrl-C), Run asks the gateway to kill the command on every
// node, waits briefly for the final results and returns them with ctx's error.
func (c *Client) Run(ctx context.Context, name, command string, o RunOptions) ([]RunResult, error) {
	return c.run(ctx, name, command, nil, o)
}

// RunArgv runs one command given as its words on the cluster's nodes: each
// reaches the command exactly as given, with no shell expansion (the node
// agent execs them inside the login environment; a plain session quotes
// each for the shell). Otherwise as Run.
func (c *Client) RunArgv(ctx context.Context, name string, argv []string, o RunOptions) ([]RunResult, error) {
	if len(argv) == 0 {
		return nil, rh.Invalid("argv", "must not be empty")
	}
	return c.run(ctx, name, "", argv, o)
}

// RunWords runs what a user typed after "--" (rhcli run's rule, see
// CommandLine): a single word as a shell command line, several words as
// one command's exact words (RunArgv).
func (c *Client) RunWords(ctx context.Context, name string, words []string, o RunOptions) ([]RunResult, error) {
	if len(words) == 1 {
		return c.Run(ctx, name, words[0], o)
	}
	return c.RunArgv(ctx, name, words, o)
}

func (c *Client) run(ctx context.Context, name, command string, argv []string, o RunOptions) ([]RunResult, error) {
	inbox := c.nc.NewInbox()
	// A synchronous subscription queues up to 64 MiB, more than the gateway's
	// window lets out before we acknowledge.
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("client: run: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req := api.RunRequest{
		Name: name, Node: o.Node, Command: command, Argv: argv, Env: o.Env, Dir: o.Dir,
		TimeoutSeconds: int((o.Timeout + time.Second - 1) / time.Second), RunID: uuid.NewString(), Stdin: o.Stdin != nil,
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: run: %w", err)
	}
	// The answer and all the output come to our own inbox, the request's
	// reply subject: RunAccepted (or an error) first.
	if err := c.nc.PublishRequest(api.SSHStreamSubject(api.SSHOpRun), inbox, body); err != nil {
		return nil, fmt.Errorf("client: run: %w", err)
	}
	// The answer is awaited even if ctx ends meanwhile: the run id then lets
	// us cancel what the gateway may already have started.
	var acc api.RunAccepted
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	first, err := sub.NextMsgWithContext(actx)
	cancel()
	if err != nil {
		_ = c.nc.Publish(api.RunCancelSubject(req.RunID), nil)
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("%s did not answer in time", api.SSHStreamSubject(api.SSHOpRun)), Err: err}
	}
	if err := msgError(first); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(first.Data, &acc); err != nil {
		return nil, fmt.Errorf("client: run: decode answer: %w", err)
	}
	if o.OnStart != nil {
		o.OnStart(acc.Nodes)
	}
	if o.Stdin != nil && acc.StdinSubject != "" {
		sctx, stopInput := context.WithCancel(ctx)
		defer stopInput()
		go c.sendStdin(sctx, acc.StdinSubject, o.Stdin)
	}
	capture := o.Capture || (o.Stdout == nil && o.Stderr == nil && o.OnOutput == nil)
	type out struct{ stdout, stderr bytes.Buffer }
	outs := map[string]*out{}
	for _, n := range acc.Nodes {
		outs[n] = &out{}
	}
	var lastAck int64
	ackEvery := int64(max(acc.Window/4, 1))
	var cancelled bool
	var grace time.Time
	for {
		wctx := ctx
		if cancelled {
			wctx = context.Background()
		}
		deadline := time.Now().Add(runIdle)
		if cancelled && grace.Before(deadline) {
			deadline = grace
		}
		nctx, ncancel := context.WithDeadline(wctx, deadline)
		m, err := sub.NextMsgWithContext(nctx)
		ncancel()
		if err != nil {
			switch {
			case !cancelled && ctx.Err() != nil:
				cancelled = true
				grace = time.Now().Add(10 * time.Second)
				_ = c.nc.Publish(acc.CancelSubject, nil)
				continue
			case cancelled:
				return collect(acc.Nodes, nil, nil), ctx.Err()
			}
			return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("run %s: the gateway stopped sending (nothing for %s)", acc.RunID, runIdle), Err: err}
		}
		switch m.Header.Get(api.HdrEvent) {
		case api.EventData:
			node, stream := m.Header.Get(api.HdrNode), m.Header.Get(api.HdrStream)
			if o.OnOutput != nil {
				o.OnOutput(node, stream, m.Data)
			}
			w := o.Stdout
			if stream == "stderr" {
				w = o.Stderr
			}
			if w != nil {
				_, _ = w.Write(m.Data)
			}
			if capture {
				if b := outs[node]; b != nil {
					if stream == "stderr" {
						b.stderr.Write(m.Data)
					} else {
						b.stdout.Write(m.Data)
					}
				}
			}
			seq, _ := strconv.ParseInt(m.Header.Get(api.HdrSeq), 10, 64)
			if seq-lastAck >= ackEvery {
				lastAck = seq
				_ = c.nc.Publish(acc.AckSubject, []byte(strconv.FormatInt(seq, 10)))
			}
		case api.EventDone:
			var done api.RunDone
			if err := json.Unmarshal(m.Data, &done); err != nil {
				return nil, fmt.Errorf("client: run %s: decode results: %w", acc.RunID, err)
			}
			res := collect(acc.Nodes, done.Results, func(n string) (string, string) {
				if b := outs[n]; b != nil {
					return b.stdout.String(), b.stderr.String()
				}
				return "", ""
			})
			if cancelled {
				return res, ctx.Err()
			}
			return res, nil
		}
	}
}

func collect(nodes []string, rs []api.RunNodeResult, output func(string) (string, string)) []RunResult {
	byNode := map[string]api.RunNodeResult{}
	for _, r := range rs {
		byNode[r.Node] = r
	}
	out := make([]RunResult, 0, len(nodes))
	for _, n := range nodes {
		r, ok := byNode[n]
		if !ok {
			r = api.RunNodeResult{Node: n, ExitCode: -1, Error: "no result (cancelled)"}
		}
		rr := RunResult{Node: n, ExitCode: r.ExitCode, Error: r.Error, TimedOut: r.TimedOut}
		if output != nil {
			rr.Stdout, rr.Stderr = output(n)
		}
		out = append(out, rr)
	}
	return out
}

// sendStdin sends in to a run's stdin subject, a chunk per request, each
// answered once the node took it, then the end of input. It stops at the
// first refusal (the command reads no more) or when ctx ends.
func (c *Client) sendStdin(ctx context.Context, subject string, in io.Reader) {
	buf := make([]byte, api.MaxChunk)
	for ctx.Err() == nil {
		n, err := in.Read(buf)
		if n > 0 && c.stdinRequest(ctx, subject, buf[:n], false) != nil {
			return
		}
		if err != nil { // EOF or a failed read: the input ends either way
			_ = c.stdinRequest(ctx, subject, nil, true)
			return
		}
	}
}

func (c *Client) stdinRequest(ctx context.Context, subject string, data []byte, eof bool) error {
	m := nats.NewMsg(subject)
	m.Data = data
	if eof {
		m.Header.Set(api.HdrEOF, "1")
	}
	rep, err := c.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return err
	}
	return msgError(rep)
}
