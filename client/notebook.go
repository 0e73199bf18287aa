package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// DefaultNotebookPort is the local port a notebook listens on, and the
// port Jupyter is asked for on the node, unless told otherwise.
const DefaultNotebookPort = 8888

// NotebookOptions say where Jupyter runs and where its tunnel listens.
type NotebookOptions struct {
	// Node is "head" (default), a 0-based index or a node's address.
	Node string
	// LocalAddr is the local host:port to listen on; "" means
	// 127.0.0.1:DefaultNotebookPort, port 0 a free port.
	LocalAddr string
	// RemotePort is the port Jupyter is asked for on the node; 0 means
	// DefaultNotebookPort. Jupyter takes the next free one when it is
	// busy; the tunnel follows.
	RemotePort int
	// Dir is the notebook directory on the node; "" means the home.
	Dir string
	// Env is exported to Jupyter.
	Env map[string]string
	// TrustProxyCommand: see TunnelOptions.
	TrustProxyCommand bool
	// OnEvent: see TunnelOptions.
	OnEvent func(TunnelEvent)
	// Log, if set, receives Jupyter's own output.
	Log io.Writer
}

// Notebook is Jupyter running on a node, reached through a tunnel.
type Notebook struct {
	*Tunnel
	// URL opens the notebook through the tunnel, with its token.
	URL string
	// Token is Jupyter's login token ("" when Jupyter asks for none).
	Token string
	// RemotePort is the port Jupyter listens on, on the node.
	RemotePort int

	runDone chan struct{}
	runErr  error
	cancel  context.CancelFunc
	done    chan struct{}
}

// Done is closed when Jupyter has stopped on the node and the tunnel has
// closed.
func (n *Notebook) Done() <-chan struct{} { return n.done }

// Wait blocks until Done and says why it came: nil after ctx ended or
// Close (Jupyter was stopped on the node), else Jupyter exiting by itself
// or the tunnel giving up.
func (n *Notebook) Wait() error {
	<-n.done
	if n.runErr != nil {
		return n.runErr
	}
	return n.Tunnel.Wait()
}

// Close stops Jupyter on the node, closes the tunnel and waits for both.
func (n *Notebook) Close() error {
	n.cancel()
	<-n.done
	return nil
}

// ErrNotebookNotStarted is matched (errors.Is) by Notebook's error when
// Jupyter ended before it served: not installed and not installable (pip
// cannot reach a package index), or it failed. The error carries the end of
// its output.
var ErrNotebookNotStarted = errors.New("client: Jupyter did not start")

// notebookScript starts Jupyter in the foreground so cancelling the run
// kills it. It uses the Jupyter the node has (python3's module, then the
// jupyter-notebook command, as Debian's package installs it), and installs
// one with pip --user when there is none. Jupyter's options are the ones
// both notebook 6 and 7 accept.
const notebookScript = `if python3 -m jupyter notebook --version >/dev/null 2>&1; then set -- python3 -m jupyter notebook
elif command -v jupyter-notebook >/dev/null 2>&1; then set -- jupyter-notebook
else
  echo "rh: Jupyter is not installed on this node; installing it: python3 -m pip install --user notebook" >&2
  if ! python3 -m pip install --user --disable-pip-version-check --retries 1 notebook >&2; then
    echo "rh: could not install Jupyter on this node: pip install --user notebook failed; pip says why above (often: no package index it can reach, PyPI or a mirror set with PIP_INDEX_URL or pip.conf; or a Python the system manages, PEP 668). Install it on the node yourself (Debian: apt-get install jupyter-notebook; or pip install notebook in a virtual environment) and try again" >&2
    exit 127
  fi
  set -- python3 -m jupyter notebook
fi
if [ "$(id -u 2>/dev/null)" = 0 ]; then set -- "$@" --allow-root; fi
exec "$@" --no-browser --ip=127.0.0.1 --port=%d`

// jupyterURL finds the URL Jupyter prints once it serves.
var (
	jupyterURL   = regexp.MustCompile(`https?://(?:127\.0\.0\.1|localhost):(\d+)(/[^\s]*)?`)
	jupyterToken = regexp.MustCompile(`[?&]token=([^&\s]+)`)
)

// Notebook starts Jupyter on a node of the cluster (Runhouse's notebook):
// through the gateway's run, so it is the node's own process that ends
// when ctx does, then a tunnel to it. It returns once Jupyter serves, with
// the local URL and token. The local port is taken first, so a busy one is
// refused before anything starts on the node.
func (c *Client) Notebook(ctx context.Context, name string, o NotebookOptions) (*Notebook, error) {
	if o.Node == api.NodeAll {
		return nil, rh.Invalid("node", "Jupyter runs on one node: pick head, an index or an address, not all")
	}
	ln, err := listenLocal(o.LocalAddr, DefaultNotebookPort)
	if err != nil {
		return nil, err
	}
	remote := o.RemotePort
	if remote == 0 {
		remote = DefaultNotebookPort
	}
	if remote < 1 || remote > 65535 {
		ln.Close()
		return nil, rh.Invalid("remote port", "%d is not a port (1-65535)", remote)
	}
	// Whether the node can be tunnelled to from here (access, consent to a
	// proxy command, a way to log in) is known before Jupyter starts.
	to := TunnelOptions{Node: o.Node, TrustProxyCommand: o.TrustProxyCommand, OnEvent: o.OnEvent}
	info, err := c.tunnelInfo(ctx, name, to)
	if err != nil {
		ln.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	nb := &Notebook{runDone: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	out := &jupyterOutput{found: make(chan struct{}), log: o.Log}
	go func() {
		defer close(nb.runDone)
		res, err := c.Run(rctx, name, fmt.Sprintf(notebookScript, remote), RunOptions{
			Node: o.Node, Dir: o.Dir, Env: o.Env,
			OnOutput: func(_, _ string, data []byte) { out.write(data) },
		})
		switch {
		case rctx.Err() != nil:
			// Stopped by us: not an error.
		case err != nil:
			nb.runErr = err
		case len(res) == 1 && res[0].ExitCode == 0:
			nb.runErr = fmt.Errorf("client: Jupyter on cluster %q exited", name)
		case len(res) == 1:
			nb.runErr = notStarted(name, res[0], out.tail())
		default:
			nb.runErr = fmt.Errorf("client: notebook on cluster %q: %d results for one node", name, len(res))
		}
	}()
	fail := func(err error) (*Notebook, error) {
		cancel()
		<-nb.runDone
		ln.Close()
		return nil, err
	}
	select {
	case <-out.found:
	case <-nb.runDone:
		if nb.runErr == nil {
			nb.runErr = ctx.Err()
		}
		if nb.runErr == nil {
			nb.runErr = fmt.Errorf("%w on cluster %q", ErrNotebookNotStarted, name)
		}
		return fail(nb.runErr)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	port, path := out.url()
	nb.RemotePort = port
	t, err := c.tunnel(rctx, name, port, ln, info, to)
	if err != nil {
		return fail(err)
	}
	nb.Tunnel = t
	nb.URL = t.URL() + path
	if m := jupyterToken.FindStringSubmatch(path); m != nil {
		nb.Token = m[1]
	}
	// Jupyter ending by itself takes the tunnel down with it.
	go func() {
		<-nb.runDone
		cancel()
		<-t.Done()
		close(nb.done)
	}()
	return nb, nil
}

func notStarted(name string, r RunResult, tail string) error {
	why := r.Error
	if why == "" {
		why = "exit status " + strconv.Itoa(r.ExitCode)
	}
	return fmt.Errorf("%w on cluster %q node %s (%s):\n%s", ErrNotebookNotStarted, name, r.Node, why, strings.TrimRight(tail, "\n"))
}

// jupyterOutput watches Jupyter's output for its URL and keeps its end
// for errors.
type jupyterOutput struct {
	mu      sync.Mutex
	buf     bytes.Buffer // until the URL is found
	last    []byte       // the end of the output
	found   chan struct{}
	port    int
	path    string
	log     io.Writer
	running bool // Jupyter said it is running
	matched bool
}

const outputTail = 4096

func (j *jupyterOutput) write(p []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.log != nil {
		_, _ = j.log.Write(p)
	}
	j.last = append(j.last, p...)
	if len(j.last) > outputTail {
		j.last = j.last[len(j.last)-outputTail:]
	}
	if j.matched {
		return
	}
	j.buf.Write(p)
	// Only whole lines: a URL cut between chunks must not be half-read.
	b := j.buf.Bytes()
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return
	}
	lines := b[:end]
	if !j.running {
		// Other tools print URLs too (pip its index): Jupyter's own comes
		// after it says it "is running at" (notebook 6 and 7 alike).
		i := bytes.Index(lines, []byte("is running at"))
		if i < 0 {
			j.keepLine(b, end)
			return
		}
		j.running = true
		lines = lines[i:]
	}
	if m := jupyterURL.FindSubmatch(lines); m != nil {
		j.port, _ = strconv.Atoi(string(m[1]))
		j.path = string(m[2])
		if j.path == "" {
			j.path = "/"
		}
		j.matched = true
		j.buf.Reset()
		close(j.found)
		return
	}
	j.keepLine(b, end)
}

// keepLine keeps only the unfinished line after end in the buffer.
func (j *jupyterOutput) keepLine(b []byte, end int) {
	rest := append([]byte(nil), b[end+1:]...)
	j.buf.Reset()
	j.buf.Write(rest)
}

func (j *jupyterOutput) url() (int, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.port, j.path
}

func (j *jupyterOutput) tail() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return string(j.last)
}
