// Package client is rh's Go SDK: connect to rh over NATS, create or load
// clusters by name, bring them up, watch them, run commands and move files on
// them, tear them down. Errors are rh's typed errors:
//
//	if errors.Is(err, rh.ErrNotFound) { ... }
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/internal/natsutil"
)

// DefaultURL is where `rhcli serve` listens by default.
const DefaultURL = "nats://127.0.0.1:4222"

// Options say how to reach rh.
type Options struct {
	// URL of NATS; empty means RH_NATS_URL, else DefaultURL.
	URL string
	// Creds is a NATS credentials file; empty means RH_NATS_CREDS.
	Creds string
	// TLSCA is a PEM file of the CA that signed the server's TLS
	// certificate, when it is not one the system trusts; empty means
	// RH_NATS_CA.
	TLSCA string
	// Name identifies this connection in NATS's monitoring.
	Name string
	// Timeout bounds each request; 0 means 30 s.
	Timeout time.Duration
	// AttemptTimeout bounds one attempt of a request that is safe to send
	// again (registry requests); 0 means DefaultAttemptTimeout. A service
	// that died with the request is asked again after it, not after Timeout.
	AttemptTimeout time.Duration
}

// LocalOperatorCreds is the local operator's credentials file that `rhcli
// serve` makes under the default data dir (~/.rh/auth/operator.creds), when
// every server url names (a comma-separated list, as nats.Connect takes) is
// a loopback address and the file exists: talking to the embedded default
// needs no setup. Otherwise "".
func LocalOperatorCreds(url string) string {
	for s := range strings.SplitSeq(url, ",") {
		if !isLoopbackURL(strings.TrimSpace(s)) {
			return ""
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(home, ".rh", "auth", "operator.creds")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// isLoopbackURL reports whether a NATS server URL (the scheme optional, as
// nats.Connect allows) is on this machine: localhost or any loopback
// address, so serve --listen 127.0.0.5:4222 is as local as the default.
func isLoopbackURL(s string) bool {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := neturl.Parse(s)
	if err != nil {
		return false
	}
	h := u.Hostname()
	ip, err := netip.ParseAddr(h)
	return h == "localhost" || err == nil && ip.IsLoopback()
}

// Client talks to rh's services.
type Client struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	owned   bool
	timeout time.Duration
	attempt time.Duration
	url     string
}

// Connect dials NATS. When nothing answers it says so and how to start rh.
func Connect(ctx context.Context, o Options) (*Client, error) {
	if o.URL == "" {
		o.URL = os.Getenv("RH_NATS_URL")
	}
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Creds == "" {
		o.Creds = os.Getenv("RH_NATS_CREDS")
	}
	if o.Creds == "" {
		o.Creds = LocalOperatorCreds(o.URL)
	}
	if o.TLSCA == "" {
		o.TLSCA = os.Getenv("RH_NATS_CA")
	}
	var extra []nats.Option
	if o.TLSCA != "" {
		extra = append(extra, nats.RootCAs(o.TLSCA))
	}
	if o.Name == "" {
		o.Name = "rh-client"
	}
	nc, err := natsutil.Connect(ctx, o.URL, o.Name, o.Creds, extra...)
	if err != nil {
		if errors.Is(err, natsutil.ErrUnreachable) {
			return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("nothing answers at %s: start rh with `rhcli serve` (or set --nats / RH_NATS_URL)", o.URL), Err: err}
		}
		if errors.Is(err, natsutil.ErrAuthorization) {
			return nil, &rh.Error{Code: rh.EFORBIDDEN, Message: fmt.Sprintf("%s refused these credentials: give --creds FILE or RH_NATS_CREDS (an admin makes one with `rhcli user add`)", o.URL), Err: err}
		}
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("cannot connect to %s", o.URL), Err: err}
	}
	c, err := New(nc, o.Timeout)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.owned, c.url = true, o.URL
	if o.AttemptTimeout > 0 {
		c.attempt = o.AttemptTimeout
	}
	return c, nil
}

// New wraps an existing connection; Close leaves it open.
func New(nc *nats.Conn, timeout time.Duration) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &Client{nc: nc, js: js, timeout: timeout, attempt: min(DefaultAttemptTimeout, timeout), url: nc.ConnectedUrl()}, nil
}

// SetAttemptTimeout sets Options.AttemptTimeout on a client made by New.
func (c *Client) SetAttemptTimeout(d time.Duration) {
	if d > 0 {
		c.attempt = d
	}
}

// Close closes the connection if Connect made it.
func (c *Client) Close() {
	if c.owned {
		c.nc.Close()
	}
}

// Conn is the underlying NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Call sends a request to an rh service endpoint and decodes the answer into
// resp. Service errors come back as *rh.Error.
func (c *Client) Call(ctx context.Context, subject string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: encode request: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	return c.send(ctx, subject, body, resp)
}

// Retry settings of requests that may be sent again (callAgain): each
// attempt waits AttemptTimeout, doubled after each attempt that timed out
// (up to maxAttemptTimeout); no responders (the service restarting) is
// retried for at most unavailableFor, so a service that is simply not
// running is still reported at once-ish.
const (
	DefaultAttemptTimeout = 2 * time.Second
	maxAttemptTimeout     = 8 * time.Second
	unavailableFor        = 5 * time.Second
	// storeBusyFor bounds retries of a service whose store does not answer:
	// a JetStream leader election takes seconds.
	storeBusyFor = 15 * time.Second
)

// callAgain is Call for a request that is safe to send again: the registry
// answers a repeat as it answered the first (a create carries its request
// id, up and teardown are no-ops the second time). A registry that died
// with the request, or is restarting, costs a short attempt rather than the
// whole timeout; the attempts share the caller's deadline (or the client's
// timeout). It reports whether the request was sent more than once.
func (c *Client) callAgain(ctx context.Context, subject string, req, resp any) (again bool, _ error) {
	body, err := json.Marshal(req)
	if err != nil {
		return false, fmt.Errorf("client: encode request: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	attempt, pause := c.attempt, 50*time.Millisecond
	var unanswered time.Time // since when no one has answered
	var busy time.Time       // since when the service's store has not answered
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		msg, err := c.nc.RequestWithContext(actx, subject, body)
		cancel()
		switch {
		case err == nil && storeBusy(msg) && ctx.Err() == nil && (busy.IsZero() || time.Since(busy) < storeBusyFor):
			// The service is up but its store is electing a leader (a
			// NATS node died): that passes in seconds, so ask again.
			if busy.IsZero() {
				busy = time.Now()
			}
		case err == nil || ctx.Err() != nil:
			return n > 0, c.answer(subject, msg, err, resp)
		case errors.Is(err, nats.ErrNoResponders):
			if unanswered.IsZero() {
				unanswered = time.Now()
			}
			if time.Since(unanswered) > unavailableFor {
				return n > 0, c.answer(subject, nil, err, nil)
			}
		case errors.Is(err, context.DeadlineExceeded):
			// The service took the request and did not answer: it may
			// have died with it. Ask again, waiting longer in case it is
			// only slow.
			attempt = min(2*attempt, maxAttemptTimeout)
		default:
			return n > 0, c.answer(subject, nil, err, nil)
		}
		select {
		case <-ctx.Done():
			return n > 0, c.answer(subject, nil, err, nil)
		case <-time.After(pause/2 + rand.N(pause/2+1)):
		}
		pause = min(2*pause, time.Second)
	}
}

// storeBusy reports whether msg is an "unavailable" answer from a service
// whose store did not answer (svc.StoreUnavailable), which a retry outlives.
func storeBusy(msg *nats.Msg) bool {
	return msg != nil && msg.Header.Get(micro.ErrorCodeHeader) == api.ErrorStatus(rh.EUNAVAILABLE)
}

// send sends one request with ctx's deadline.
func (c *Client) send(ctx context.Context, subject string, body []byte, resp any) error {
	msg, err := c.nc.RequestWithContext(ctx, subject, body)
	return c.answer(subject, msg, err, resp)
}

// answer decodes a request's answer (or failure) into resp or an error.
func (c *Client) answer(subject string, msg *nats.Msg, err error, resp any) error {
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			svcName := strings.Split(strings.TrimPrefix(subject, "rh.api."), ".")[0]
			return &noResponders{&rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("no %s service answers on %s: is `rhcli serve` running with it?", svcName, c.url)}}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("%s did not answer in time", subject), Err: err}
		}
		return fmt.Errorf("client: %s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		var e rh.Error
		if json.Unmarshal(msg.Data, &e) == nil && e.Code != "" {
			return &e
		}
		return &rh.Error{Code: rh.EINTERNAL, Message: msg.Header.Get(micro.ErrorHeader)}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("client: decode %s answer: %w", subject, err)
	}
	return nil
}

// noResponders is the error of a request nothing answered: it reads as its
// message alone and matches both rh.ErrUnavailable and nats.ErrNoResponders.
type noResponders struct{ e *rh.Error }

func (n *noResponders) Error() string   { return n.e.Error() }
func (n *noResponders) Unwrap() []error { return []error{n.e, nats.ErrNoResponders} }

// msgError decodes an error answer of a raw request, as Call does.
func msgError(m *nats.Msg) error {
	if m.Header.Get("Status") == "503" {
		return &rh.Error{Code: rh.EUNAVAILABLE, Message: "no sshgateway service answers: is `rhcli serve` running with it?"}
	}
	if m.Header.Get(micro.ErrorCodeHeader) == "" {
		return nil
	}
	var e rh.Error
	if json.Unmarshal(m.Data, &e) == nil && e.Code != "" {
		return fsError(&e)
	}
	return &rh.Error{Code: rh.EINTERNAL, Message: m.Header.Get(micro.ErrorHeader)}
}

// cluster sends a registry request that answers with a record. Every such
// request is safe to send again (see callAgain).
func (c *Client) cluster(ctx context.Context, op string, req any) (*rh.Cluster, error) {
	var r api.ClusterReply
	if _, err := c.callAgain(ctx, api.RegistrySubject(op), req, &r); err != nil {
		return nil, err
	}
	return r.Cluster, nil
}

// Create creates a cluster. Secrets (a BYO key or password) go to rh's
// secret store and never come back. The request carries a new request id,
// so when the registry dies with it the retry is answered with the cluster
// this create made, not "already exists".
func (c *Client) Create(ctx context.Context, name string, spec rh.Spec, secrets *rh.Secrets) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpCreate, api.CreateRequest{Name: name, Spec: spec, Secrets: secrets, RequestID: uuid.NewString()})
}

// Define records and validates a cluster without launching it (Runhouse's
// dryrun): its phase is Defined until Up launches it.
func (c *Client) Define(ctx context.Context, name string, spec rh.Spec, secrets *rh.Secrets) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpCreate, api.CreateRequest{Name: name, Spec: spec, Secrets: secrets, NoUp: true, RequestID: uuid.NewString()})
}

// Get loads a cluster by name.
func (c *Client) Get(ctx context.Context, name string) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpGet, api.NameRequest{Name: name})
}

// List summarises every cluster in name order (Get gives a whole record),
// fetching as many pages as it takes.
func (c *Client) List(ctx context.Context) ([]rh.ClusterSummary, error) {
	var out []rh.ClusterSummary
	req := api.ListRequest{}
	for {
		var r api.ListReply
		if _, err := c.callAgain(ctx, api.RegistrySubject(api.OpList), req, &r); err != nil {
			return nil, err
		}
		out = append(out, r.Clusters...)
		if r.Next == "" {
			return out, nil
		}
		req.After = r.Next
	}
}

// Up brings a cluster up (again); it does nothing to one already up or coming up.
func (c *Client) Up(ctx context.Context, name string) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpUp, api.NameRequest{Name: name})
}

// Teardown releases a cluster's machines (BYO machines are never touched).
func (c *Client) Teardown(ctx context.Context, name string) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpTeardown, api.NameRequest{Name: name})
}

// Delete forgets a terminated cluster; force forgets it in any phase. A
// delete sent again because the first attempt got no answer, and then not
// finding the cluster, counts as done: the first attempt deleted it.
func (c *Client) Delete(ctx context.Context, name string, force bool) error {
	again, err := c.callAgain(ctx, api.RegistrySubject(api.OpDelete), api.DeleteRequest{Name: name, Force: force}, nil)
	if again && errors.Is(err, rh.ErrNotFound) {
		return nil
	}
	return err
}

// SetAutostop changes the idle minutes after which the cluster is torn down (-1 never).
func (c *Client) SetAutostop(ctx context.Context, name string, minutes int) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpAutostop, api.AutostopRequest{Name: name, Minutes: minutes})
}

// Refresh asks the cluster's worker to observe it now and waits (until ctx
// ends) for the report to land; it returns the record as it then stands.
func (c *Client) Refresh(ctx context.Context, name string) (*rh.Cluster, error) {
	before, err := c.cluster(ctx, api.OpRefresh, api.NameRequest{Name: name})
	if err != nil {
		return nil, err
	}
	if !before.Status.Phase.Live() {
		return before, nil
	}
	return c.WaitFor(ctx, name, func(cl *rh.Cluster) bool {
		return cl.Status.ReportedAt.After(before.Status.ReportedAt) || cl.Incarnation != before.Incarnation
	})
}

// History returns the cluster's transitions, oldest first.
func (c *Client) History(ctx context.Context, name string) ([]rh.Transition, error) {
	var r api.EventsReply
	if _, err := c.callAgain(ctx, api.RegistrySubject(api.OpEvents), api.NameRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return r.History, nil
}

// Watch sends the cluster's record each time it changes, starting with the
// current one, until ctx ends or the cluster is deleted (then the channel
// closes). It fails at once when the cluster does not exist or the caller may
// not read it.
func (c *Client) Watch(ctx context.Context, name string) (<-chan *rh.Cluster, error) {
	ch, _, err := c.watch(ctx, name)
	return ch, err
}

// watch is Watch, plus why the channel closed once it has: nil when the
// cluster was deleted or ctx ended, else the error that stopped the watch
// (access taken away, say).
//
// The registry streams the record on api.WatchSubject in bounded streams;
// watch asks again whenever one ends (or falls silent), so a caller sees one
// unbroken sequence of records, each revision once.
func (c *Client) watch(ctx context.Context, name string) (<-chan *rh.Cluster, func() error, error) {
	if err := rh.ValidateName(name); err != nil {
		return nil, nil, err
	}
	st, err := c.openWatch(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	out := make(chan *rh.Cluster, 16)
	var reason error
	go func() {
		defer close(out)
		var last uint64
		backoff := 50 * time.Millisecond
		for {
			again, err := st.follow(ctx, &last, out)
			st.close()
			if !again {
				reason = err
				return
			}
			for {
				if st, err = c.openWatch(ctx, name); err == nil {
					backoff = 50 * time.Millisecond
					break
				}
				switch {
				case ctx.Err() != nil, rh.ErrorCode(err) == rh.ENOTFOUND:
					return // gone while we were away
				case rh.ErrorCode(err) == rh.EFORBIDDEN, rh.ErrorCode(err) == rh.EINVALID:
					reason = err
					return
				}
				// The registry is restarting or unreachable: try again.
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
			}
		}
	}()
	// reason is written before out closes and read only after.
	return out, func() error { return reason }, nil
}

// watchStream is one streamed answer to a watch request.
type watchStream struct {
	sub   *nats.Subscription
	first *nats.Msg
}

// openWatch asks the registry for a stream and waits for its first message,
// which is the current record or an error.
func (c *Client) openWatch(ctx context.Context, name string) (*watchStream, error) {
	body, _ := json.Marshal(api.NameRequest{Name: name})
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("client: watch %s: %w", name, err)
	}
	// No stream is ever dropped for a slow reader: records are few.
	_ = sub.SetPendingLimits(-1, -1)
	st := &watchStream{sub: sub}
	if err := c.nc.PublishRequest(api.WatchSubject, inbox, body); err != nil {
		st.close()
		return nil, fmt.Errorf("client: watch %s: %w", name, err)
	}
	fctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	m, err := sub.NextMsgWithContext(fctx)
	if err != nil {
		st.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &rh.Error{Code: rh.EUNAVAILABLE, Message: fmt.Sprintf("%s did not answer in time: is the registry running?", api.WatchSubject), Err: err}
	}
	if err := watchError(m); err != nil {
		st.close()
		return nil, err
	}
	st.first = m
	return st, nil
}

// watchError is the error a stream message carries, if any.
func watchError(m *nats.Msg) error {
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		var e rh.Error
		if json.Unmarshal(m.Data, &e) == nil && e.Code != "" {
			return &e
		}
		return &rh.Error{Code: rh.EINTERNAL, Message: m.Header.Get(micro.ErrorHeader)}
	}
	if m.Header.Get("Status") == "503" {
		return &rh.Error{Code: rh.EUNAVAILABLE, Message: "no registry answers on " + api.WatchSubject + ": is `rhcli serve` running with it?"}
	}
	return nil
}

// follow delivers the stream's records newer than *last to out. It reports
// whether to ask for a new stream (this one ended or fell silent) and, when
// not, the error that ended the watch (nil: deleted, or ctx ended).
func (st *watchStream) follow(ctx context.Context, last *uint64, out chan<- *rh.Cluster) (bool, error) {
	for {
		m := st.first
		st.first = nil
		if m == nil {
			ictx, cancel := context.WithTimeout(ctx, api.WatchIdle)
			var err error
			m, err = st.sub.NextMsgWithContext(ictx)
			cancel()
			if err != nil {
				return ctx.Err() == nil, nil // silent too long: ask again
			}
		}
		if err := watchError(m); err != nil {
			switch rh.ErrorCode(err) {
			case rh.ENOTFOUND:
				return false, nil
			case rh.EFORBIDDEN:
				return false, err
			}
			return true, nil
		}
		if len(m.Data) == 0 {
			return true, nil // the server ended the response
		}
		var wm api.WatchMessage
		if json.Unmarshal(m.Data, &wm) != nil {
			continue
		}
		switch wm.Type {
		case api.WatchTypeRecord:
			if wm.Cluster == nil || wm.Revision <= *last {
				continue
			}
			*last = wm.Revision
			select {
			case out <- wm.Cluster:
			case <-ctx.Done():
				return false, nil
			}
		case api.WatchTypeDeleted:
			return false, nil
		case api.WatchTypeEnd:
			return true, nil
		}
	}
}

func (st *watchStream) close() { _ = st.sub.Unsubscribe() }

// WaitFor waits until done(cluster) holds and returns that record.
func (c *Client) WaitFor(ctx context.Context, name string, done func(*rh.Cluster) bool) (*rh.Cluster, error) {
	// Stop watching once done holds, not only when ctx ends.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, why, err := c.watch(wctx, name)
	if err != nil {
		return nil, err
	}
	var last *rh.Cluster
	for cl := range ch {
		last = cl
		if done(cl) {
			return cl, nil
		}
	}
	if ctx.Err() != nil {
		if last != nil {
			return last, fmt.Errorf("cluster %q still %s: %w", name, last.Status.Phase, ctx.Err())
		}
		return nil, ctx.Err()
	}
	if err := why(); err != nil {
		return last, err
	}
	return nil, rh.NotFound("cluster %q was deleted", name)
}

// WaitPhase waits until the cluster's current incarnation reaches one of
// phases, or a final phase (which is then an error if not asked for).
func (c *Client) WaitPhase(ctx context.Context, name string, phases ...rh.Phase) (*rh.Cluster, error) {
	cl, err := c.WaitFor(ctx, name, func(cl *rh.Cluster) bool {
		return slices.Contains(phases, cl.Status.Phase) || cl.Status.Phase.Final()
	})
	if err != nil {
		return cl, err
	}
	if !slices.Contains(phases, cl.Status.Phase) {
		return cl, &rh.Error{Code: rh.EINTERNAL, Message: fmt.Sprintf("cluster %q is %s: %s", name, cl.Status.Phase, cl.Status.Message)}
	}
	return cl, nil
}

// Share gives user read or write access to a cluster (Runhouse's share);
// only its owner or an admin may.
func (c *Client) Share(ctx context.Context, name, user string, access rh.Access) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpShare, api.ShareRequest{Name: name, User: user, Access: access})
}

// Unshare takes user's share of a cluster away.
func (c *Client) Unshare(ctx context.Context, name, user string) (*rh.Cluster, error) {
	return c.cluster(ctx, api.OpUnshare, api.UnshareRequest{Name: name, User: user})
}

// AddUser creates a user (admins only) and returns it with its credentials
// file's text: the only copy of its key, which rh does not keep.
func (c *Client) AddUser(ctx context.Context, name string, role rh.Role) (rh.User, []byte, error) {
	var r api.UserAddReply
	if err := c.Call(ctx, api.UsersSubject(api.OpUserAdd), api.UserAddRequest{Name: name, Role: role}, &r); err != nil {
		return rh.User{}, nil, err
	}
	return r.User, []byte(r.Creds), nil
}

// ListUsers lists rh's users by name (admins only).
func (c *Client) ListUsers(ctx context.Context) ([]rh.User, error) {
	var r api.UsersReply
	if err := c.Call(ctx, api.UsersSubject(api.OpUserList), struct{}{}, &r); err != nil {
		return nil, err
	}
	return r.Users, nil
}

// RemoveUser removes a user (admins only); its next request is refused.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.Call(ctx, api.UsersSubject(api.OpUserRemove), api.NameRequest{Name: name}, nil)
}
