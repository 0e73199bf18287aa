package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rhq/rh/client"
)

// transfer is what one sync moved, as the tool itself reports it: regular
// files sent and file content sent (rhcli: bytes_sent; rsync: literal data,
// i.e. without checksums and protocol overhead).
type transfer struct{ files, bytes int64 }

// bcase is one sub-benchmark: run is timed; prepare runs before each timed
// run with the timer stopped; check vets each timed run's transfer.
type bcase struct {
	prepare func() error
	run     func(ctx context.Context) (transfer, error)
	check   func(transfer) error
	// transfers adds files/op and literal-B/op to the report.
	transfers bool
}

// measure runs c once untimed (so connections and ControlMasters are warm
// and destinations are in sync), then b.N times timed.
func measure(b *testing.B, c bcase) {
	ctx := b.Context()
	if _, err := c.run(ctx); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	var sum transfer
	b.ResetTimer()
	for range b.N {
		if c.prepare != nil {
			b.StopTimer()
			if err := c.prepare(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		t, err := c.run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if c.check != nil {
			if err := c.check(t); err != nil {
				b.Fatal(err)
			}
		}
		sum.files += t.files
		sum.bytes += t.bytes
	}
	b.StopTimer()
	var extra map[string]float64
	if c.transfers {
		extra = map[string]float64{
			"files/op":     float64(sum.files) / float64(b.N),
			"literal-B/op": float64(sum.bytes) / float64(b.N),
		}
	}
	record(b, extra)
}

func noTransfer(err error) (transfer, error) { return transfer{}, err }

// BenchmarkRunTrue: `true` on one node, warm. rhcli-cli is the process a user
// types (exec, NATS connect, request, result); rhcli-sdk is client.Run on an
// open connection; ssh-controlmaster reuses a master connection;
// ssh-fresh makes a new connection (handshake and authentication) every time.
func BenchmarkRunTrue(b *testing.B) {
	e := shared(b)
	for _, s := range e.stacks {
		b.Run("rhcli-cli"+s.suffix, func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				return noTransfer(e.rhcliCmd(ctx, s, "run", soloCluster, "--", "true"))
			}})
		})
		b.Run("rhcli-sdk"+s.suffix, func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				return noTransfer(sdkRun(ctx, s, soloCluster, "", 1))
			}})
		})
	}
	host := e.nodes[0].Addr()
	for _, c := range []struct{ name, config string }{
		{"ssh-controlmaster", e.sshConfigCM},
		{"ssh-fresh", e.sshConfig},
	} {
		b.Run(c.name, func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				_, err := command(ctx, nil, "ssh", "-F", c.config, host, "true")
				return noTransfer(err)
			}})
		})
	}
	// The same on a node that logs in as you, with your own rc files.
	if l := e.login; l != nil {
		b.Run("rhcli-cli-login", func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				return noTransfer(e.rhcliCmd(ctx, e.stacks[0], "run", loginCluster, "--", "true"))
			}})
		})
		b.Run("ssh-controlmaster-login", func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				_, err := command(ctx, nil, "ssh", "-F", l.sshConfigCM, l.node.Addr(), "true")
				return noTransfer(err)
			}})
		})
	}
}

// BenchmarkFanOut8: `true` on all 8 nodes at once. pdsh runs one ssh per node
// as shipped (a new connection each); pdsh-controlmaster gives those ssh
// processes the ControlMaster config, its best case.
func BenchmarkFanOut8(b *testing.B) {
	e := shared(b)
	for _, s := range e.stacks {
		b.Run("rhcli-cli"+s.suffix, func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				return noTransfer(e.rhcliCmd(ctx, s, "run", fanCluster, "--node", "all", "--", "true"))
			}})
		})
		b.Run("rhcli-sdk"+s.suffix, func(b *testing.B) {
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				return noTransfer(sdkRun(ctx, s, fanCluster, "all", fanOut))
			}})
		})
	}
	hosts := make([]string, len(e.nodes))
	for i, n := range e.nodes {
		hosts[i] = n.Addr()
	}
	for _, c := range []struct{ name, config string }{
		{"pdsh", e.sshConfig},
		{"pdsh-controlmaster", e.sshConfigCM},
	} {
		b.Run(c.name, func(b *testing.B) {
			// pdsh runs `ssh $PDSH_SSH_ARGS` and adds -l USER and the host.
			env := []string{"PDSH_SSH_ARGS=-F " + c.config + " -x -l%u %h", "PDSH_SSH_ARGS_APPEND="}
			measure(b, bcase{run: func(ctx context.Context) (transfer, error) {
				_, err := command(ctx, env, "pdsh", "-S", "-R", "ssh", "-l", e.user, "-w", strings.Join(hosts, ","), "true")
				return noTransfer(err)
			}})
		})
	}
}

// BenchmarkResyncTree5000: re-sync of an unchanged 5,000-file tree to one
// node; every timed run must find nothing to send.
func BenchmarkResyncTree5000(b *testing.B) {
	e := shared(b)
	tree, err := e.localTree()
	if err != nil {
		b.Fatal(err)
	}
	unchanged := func(t transfer) error {
		if t.files != 0 {
			return fmt.Errorf("re-sync of an unchanged tree sent %d files", t.files)
		}
		return nil
	}
	for _, s := range e.stacks {
		b.Run("rhcli"+s.suffix, func(b *testing.B) {
			dst := filepath.Join(e.dir, "remote", "tree-rhcli")
			measure(b, bcase{check: unchanged, transfers: true, run: func(ctx context.Context) (transfer, error) {
				return e.rhcliPut(ctx, s, tree, dst)
			}})
		})
	}
	b.Run("rsync", func(b *testing.B) {
		dst := filepath.Join(e.dir, "remote", "tree-rsync")
		measure(b, bcase{check: unchanged, transfers: true, run: func(ctx context.Context) (transfer, error) {
			return e.rsync(ctx, tree+"/", dst+"/")
		}})
	})
}

// BenchmarkResync1GBChanged1MB: a 1 GiB file of random bytes, in sync on the
// node; before each timed run 1 MiB at a random offset is overwritten (timer
// stopped), then the file is re-synced. All cases share the one remote copy:
// each starts by bringing it in sync, untimed.
func BenchmarkResync1GBChanged1MB(b *testing.B) {
	e := shared(b)
	big, err := e.localBig()
	if err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(e.dir, "remote", "big.bin")
	oneFile := func(t transfer) error {
		if t.files != 1 {
			return fmt.Errorf("re-sync of the changed file sent %d files, want 1", t.files)
		}
		return nil
	}
	for _, s := range e.stacks {
		b.Run("rhcli"+s.suffix, func(b *testing.B) {
			measure(b, bcase{prepare: e.changeBig, check: oneFile, transfers: true, run: func(ctx context.Context) (transfer, error) {
				return e.rhcliPut(ctx, s, big, dst)
			}})
		})
	}
	b.Run("rsync", func(b *testing.B) {
		measure(b, bcase{prepare: e.changeBig, check: oneFile, transfers: true, run: func(ctx context.Context) (transfer, error) {
			return e.rsync(ctx, big, dst)
		}})
	})
}

// rhcliCmd runs the rhcli binary against stack s, as a user would.
func (e *env) rhcliCmd(ctx context.Context, s *stack, args ...string) error {
	_, err := command(ctx, nil, e.rhcli, append([]string{"--nats", s.url}, args...)...)
	return err
}

// rhcliPut runs `rhcli put solo src dst` and returns what it reports.
func (e *env) rhcliPut(ctx context.Context, s *stack, src, dst string) (transfer, error) {
	out, err := command(ctx, nil, e.rhcli, "--nats", s.url, "-o", "json", "put", soloCluster, src, dst)
	if err != nil {
		return transfer{}, err
	}
	var res []client.SyncResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 {
		return transfer{}, fmt.Errorf("rhcli put: unexpected output %q (%v)", out, err)
	}
	return transfer{files: int64(res[0].FilesSent), bytes: res[0].BytesSent}, nil
}

var (
	rsyncFiles   = regexp.MustCompile(`Number of regular files transferred: ([\d,]+)`)
	rsyncLiteral = regexp.MustCompile(`Literal data: ([\d,]+) bytes`)
)

// rsync runs `rsync -a -e "ssh -F config"` from src to dst on the head node,
// with a new ssh connection, as `rsync -e ssh` does; default options, so no
// compression.
func (e *env) rsync(ctx context.Context, src, dst string) (transfer, error) {
	out, err := command(ctx, nil, "rsync", "-a", "--stats", "-e", "ssh -F "+e.sshConfig, src, e.nodes[0].Addr()+":"+dst)
	if err != nil {
		return transfer{}, err
	}
	var t transfer
	for _, f := range []struct {
		re *regexp.Regexp
		to *int64
	}{{rsyncFiles, &t.files}, {rsyncLiteral, &t.bytes}} {
		m := f.re.FindSubmatch(out)
		if m == nil {
			return t, fmt.Errorf("rsync --stats: no %q in %q", f.re, out)
		}
		*f.to, _ = strconv.ParseInt(strings.ReplaceAll(string(m[1]), ",", ""), 10, 64)
	}
	return t, nil
}

// sdkRun runs `true` through the SDK on an open connection.
func sdkRun(ctx context.Context, s *stack, cluster, node string, want int) error {
	res, err := s.cl.Run(ctx, cluster, "true", client.RunOptions{Node: node})
	if err != nil {
		return err
	}
	if len(res) != want {
		return fmt.Errorf("run on %s: %d results, want %d", cluster, len(res), want)
	}
	for _, r := range res {
		if r.ExitCode != 0 || r.Error != "" {
			return fmt.Errorf("run on %s node %s: exit %d %s", cluster, r.Node, r.ExitCode, r.Error)
		}
	}
	return nil
}

// BenchmarkPut1GB: a first copy of the 1 GiB file (issue 3's large-file
// put): the destination is removed, untimed, before each run.
func BenchmarkPut1GB(b *testing.B) {
	e := shared(b)
	big, err := e.localBig()
	if err != nil {
		b.Fatal(err)
	}
	fresh := func(dst string) func() error { return func() error { return os.RemoveAll(dst) } }
	oneFile := func(t transfer) error {
		if t.files != 1 {
			return fmt.Errorf("put of a new file sent %d files, want 1", t.files)
		}
		return nil
	}
	for _, s := range e.stacks {
		b.Run("rhcli"+s.suffix, func(b *testing.B) {
			dst := filepath.Join(e.dir, "remote", "put-big-rhcli"+s.suffix)
			measure(b, bcase{prepare: fresh(dst), check: oneFile, transfers: true, run: func(ctx context.Context) (transfer, error) {
				return e.rhcliPut(ctx, s, big, dst)
			}})
		})
	}
	b.Run("rsync", func(b *testing.B) {
		dst := filepath.Join(e.dir, "remote", "put-big-rsync")
		measure(b, bcase{prepare: fresh(dst), check: oneFile, transfers: true, run: func(ctx context.Context) (transfer, error) {
			return e.rsync(ctx, big, dst)
		}})
	})
}

// BenchmarkPutTree5000: a first copy of the 5,000-file tree (issue 3's
// small-files put); the destination is removed, untimed, before each run.
func BenchmarkPutTree5000(b *testing.B) {
	e := shared(b)
	tree, err := e.localTree()
	if err != nil {
		b.Fatal(err)
	}
	fresh := func(dst string) func() error { return func() error { return os.RemoveAll(dst) } }
	for _, s := range e.stacks {
		b.Run("rhcli"+s.suffix, func(b *testing.B) {
			dst := filepath.Join(e.dir, "remote", "put-tree-rhcli"+s.suffix)
			measure(b, bcase{prepare: fresh(dst), transfers: true, run: func(ctx context.Context) (transfer, error) {
				return e.rhcliPut(ctx, s, tree, dst)
			}})
		})
	}
	b.Run("rsync", func(b *testing.B) {
		dst := filepath.Join(e.dir, "remote", "put-tree-rsync")
		measure(b, bcase{prepare: fresh(dst), transfers: true, run: func(ctx context.Context) (transfer, error) {
			return e.rsync(ctx, tree+"/", dst+"/")
		}})
	})
}
