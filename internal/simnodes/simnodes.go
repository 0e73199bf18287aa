// Package simnodes makes the "machines" of the cloud simulators real: each
// node is a genuine OpenSSH sshd (internal/sshnode) on its own 127.0.0.x
// address, so a cluster launched on the SkyPilot or SageMaker simulator can be
// reached, run commands and move files exactly as a cloud cluster would. It
// backs `rhcli serve --sim` and the workers' tests that need real SSH.
package simnodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/rhq/rh/internal/sagemakersim"
	"github.com/rhq/rh/internal/skysim"
	"github.com/rhq/rh/internal/sshnode"
)

// Options configure a Provider.
type Options struct {
	// User is the account the nodes accept logins for (default:
	// sshnode.DefaultUser, a plain account with a light shell when running
	// as root; sshd must run as root to switch to another one).
	User string
	// SSHD is the daemon binary (default sshnode.DefaultSSHD).
	SSHD   string
	Logger *slog.Logger
}

// Provider starts and stops sshd nodes per cluster (or SageMaker job). It is
// safe for concurrent use.
type Provider struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	closed   bool
	clusters map[string]*group
}

// group is one cluster's nodes. Its key is generated once per cluster and
// kept across Release, as SkyPilot keeps one key per user: a relaunched
// cluster is reachable with the key rh already stored.
type group struct {
	key   *sshnode.UserKey
	nodes []*sshnode.Node
}

// New returns an empty provider; Close stops every node it started.
func New(opts Options) *Provider {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Provider{opts: opts, log: opts.Logger.With("component", "simnodes"), clusters: map[string]*group{}}
}

// Provision starts n nodes for cluster (head first) authorizing the cluster's
// key, and returns their endpoints with the private key PEM. A cluster that
// already has nodes gets them back unchanged when n matches.
func (p *Provider) Provision(ctx context.Context, cluster string, n int) ([]skysim.Endpoint, error) {
	g, err := p.provision(ctx, cluster, n, "")
	if err != nil {
		return nil, err
	}
	eps := make([]skysim.Endpoint, len(g.nodes))
	for i, nd := range g.nodes {
		eps[i] = skysim.Endpoint{InternalIP: nd.Addr(), ExternalIP: nd.Addr(), SSHPort: nd.Port(), SSHUser: nd.User(), PrivateKeyPEM: g.key.PrivatePEM}
	}
	return eps, nil
}

func (p *Provider) provision(ctx context.Context, cluster string, n int, extraKey string) (*group, error) {
	if n < 1 {
		return nil, fmt.Errorf("simnodes: %s: %d nodes requested", cluster, n)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("simnodes: provider closed")
	}
	g, ok := p.clusters[cluster]
	if ok && len(g.nodes) == n {
		p.mu.Unlock()
		return g, nil
	}
	p.mu.Unlock()
	if ok && len(g.nodes) > 0 {
		// A different size: start over rather than patch a half-matching set.
		if err := p.Release(ctx, cluster); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	g, ok = p.clusters[cluster]
	if !ok {
		key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
		if err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("simnodes: key for %s: %w", cluster, err)
		}
		g = &group{key: key}
		p.clusters[cluster] = g
	}
	p.mu.Unlock()

	keys := []string{g.key.AuthorizedKey}
	if extraKey != "" {
		keys = append(keys, extraKey)
	}
	nodes := make([]*sshnode.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			nodes[i], errs[i] = sshnode.Start(ctx, sshnode.Options{User: p.opts.User, SSHD: p.opts.SSHD, AuthorizedKeys: keys})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, nd := range nodes {
			if nd != nil {
				_ = nd.Close()
			}
		}
		return nil, fmt.Errorf("simnodes: start %d nodes for %s: %w", n, cluster, err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		for _, nd := range nodes {
			_ = nd.Close()
		}
		return nil, errors.New("simnodes: provider closed")
	}
	g.nodes = nodes
	p.mu.Unlock()
	p.log.Debug("provisioned", "cluster", cluster, "nodes", n)
	return g, nil
}

// Release stops the cluster's nodes. Releasing an unknown cluster is not an error.
func (p *Provider) Release(_ context.Context, cluster string) error {
	p.mu.Lock()
	g, ok := p.clusters[cluster]
	var nodes []*sshnode.Node
	if ok {
		nodes, g.nodes = g.nodes, nil
	}
	p.mu.Unlock()
	var errs []error
	for _, nd := range nodes {
		if err := nd.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(nodes) > 0 {
		p.log.Debug("released", "cluster", cluster, "nodes", len(nodes))
	}
	return errors.Join(errs...)
}

// Live returns the number of running nodes of cluster (all clusters when
// cluster is ""), for tests asserting nothing was left behind.
func (p *Provider) Live(cluster string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for name, g := range p.clusters {
		if cluster == "" || name == cluster {
			n += len(g.nodes)
		}
	}
	return n
}

// Close stops every node and refuses later provisions.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	names := make([]string, 0, len(p.clusters))
	for name := range p.clusters {
		names = append(names, name)
	}
	p.mu.Unlock()
	var errs []error
	for _, name := range names {
		errs = append(errs, p.Release(context.Background(), name))
	}
	return errors.Join(errs...)
}

// SageMaker adapts the provider to the SageMaker simulator, whose instances
// authorize the key the job was given (its SSH public key environment value)
// rather than one the provider makes.
func (p *Provider) SageMaker() sagemakersim.NodeProvider { return sageMakerNodes{p} }

type sageMakerNodes struct{ p *Provider }

// Provision starts n nodes for the job that accept authorizedKey (and the
// provider's own per-job key, which keeps a key-less job well-formed).
func (s sageMakerNodes) Provision(ctx context.Context, job string, n int, authorizedKey string) ([]sagemakersim.Endpoint, error) {
	g, err := s.p.provision(ctx, "sagemaker/"+job, n, authorizedKey)
	if err != nil {
		return nil, err
	}
	eps := make([]sagemakersim.Endpoint, len(g.nodes))
	for i, nd := range g.nodes {
		eps[i] = sagemakersim.Endpoint{Host: nd.Addr(), Port: nd.Port(), User: nd.User()}
	}
	return eps, nil
}

// Release stops the job's nodes.
func (s sageMakerNodes) Release(ctx context.Context, job string) error {
	return s.p.Release(ctx, "sagemaker/"+job)
}
