// Package skypilot is a client of the SkyPilot API server (the FastAPI
// server behind `sky`, default http://127.0.0.1:46580).
//
// The protocol is asynchronous: every operation is a POST whose answer
// carries only a request id; the result is fetched with /api/get (blocking)
// or by polling /api/status. Results come back double-encoded (JSON strings
// holding JSON) and cluster handles as base64 Python pickles, decoded here
// with internal/pickle. The protocol is read from SkyPilot's sky/server sources
// (server.py, requests/payloads.py); testdata/ holds the shapes it checks.
package skypilot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Protocol constants.
const (
	DefaultEndpoint = "http://127.0.0.1:46580"

	// EnvEndpoint and EnvToken are the variables the sky CLI reads too.
	EnvEndpoint = "SKYPILOT_API_SERVER_ENDPOINT"
	EnvToken    = "SKYPILOT_SERVICE_ACCOUNT_TOKEN"

	HeaderAPIVersion      = "X-SkyPilot-API-Version"
	HeaderVersion         = "X-SkyPilot-Version"
	HeaderRequestID       = "X-Skypilot-Request-ID"
	HeaderLegacyRequestID = "X-Request-ID"

	// DefaultAPIVersion is the API version this client declares. Servers
	// ≥ 55 report WAITING only to clients declaring ≥ 55; this client
	// understands WAITING, so it declares the version whose protocol it
	// was written against.
	DefaultAPIVersion = 90
	DefaultVersion    = "0.14.0"
	// MinServerAPIVersion is the oldest server API this client accepts
	// (the `include_handle` status field and WAITING-free states are fine
	// below 55, but older servers lack fields the worker relies on).
	MinServerAPIVersion = 11
)

// Config configures a Client. Zero values mean defaults.
type Config struct {
	Endpoint string // default DefaultEndpoint
	Token    string // service-account token, sent as "Authorization: Bearer"

	// UserID is sent as SKYPILOT_USER_ID (8 hex chars). SkyPilot keys
	// cluster ownership on it, so it must stay the same across restarts:
	// the default is derived from the OS user and host name.
	UserID string
	User   string // SKYPILOT_USER; default the OS user name

	APIVersion int    // default DefaultAPIVersion
	Version    string // default DefaultVersion

	// HTTPClient must not set Timeout: /api/get blocks for as long as the
	// request runs. Deadlines come from contexts.
	HTTPClient *http.Client
	Logger     *slog.Logger

	// PollStatus makes Wait poll /api/status instead of blocking on
	// /api/get (useful behind proxies that cut long requests).
	PollStatus   bool
	PollInterval time.Duration // default 500ms

	// RetryBase and RetryMax shape the exponential backoff (full jitter)
	// for 503s and connection failures; RetryBudget bounds the total time
	// spent retrying one call (SkyPilot's own client gives up after 600s).
	RetryBase   time.Duration // default 250ms
	RetryMax    time.Duration // default 10s
	RetryBudget time.Duration // default 600s
}

// ConfigFromEnv returns a Config with Endpoint and Token taken from
// SKYPILOT_API_SERVER_ENDPOINT and SKYPILOT_SERVICE_ACCOUNT_TOKEN, as
// getenv (the caller's environment) has them; nil reads nothing.
func ConfigFromEnv(getenv func(string) string) Config {
	if getenv == nil {
		return Config{}
	}
	return Config{Endpoint: getenv(EnvEndpoint), Token: getenv(EnvToken)}
}

// Client talks to one API server. It is safe for concurrent use.
type Client struct {
	cfg      Config
	base     *url.URL
	http     *http.Client
	log      *slog.Logger
	mu       sync.Mutex
	srvAPI   int
	srvVer   string
	userID   string
	userName string
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	u, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("skypilot: bad endpoint %q (want http(s)://host:port)", cfg.Endpoint)
	}
	if cfg.APIVersion == 0 {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = 600 * time.Second
	}
	c := &Client{cfg: cfg, base: u, http: cfg.HTTPClient, log: cfg.Logger}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.userName = cfg.User
	if c.userName == "" {
		c.userName = "rh"
		if u, err := user.Current(); err == nil && u.Username != "" {
			c.userName = u.Username
		}
	}
	c.userID = strings.ToLower(cfg.UserID)
	if c.userID == "" {
		host, _ := os.Hostname()
		sum := sha256.Sum256([]byte("rh-skyworker:" + c.userName + "@" + host))
		c.userID = hex.EncodeToString(sum[:4])
	}
	if len(c.userID) != 8 || strings.Trim(c.userID, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("skypilot: user id %q must be 8 hex characters", cfg.UserID)
	}
	return c, nil
}

// Endpoint returns the server URL.
func (c *Client) Endpoint() string { return c.base.String() }

// UserID returns the SKYPILOT_USER_ID this client sends.
func (c *Client) UserID() string { return c.userID }

// ServerVersion returns the server's API and release versions as last seen
// in response headers or /api/health (zero values before any exchange).
func (c *Client) ServerVersion() (apiVersion int, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srvAPI, c.srvVer
}

func (c *Client) envVars() map[string]string {
	return map[string]string{"SKYPILOT_USER_ID": c.userID, "SKYPILOT_USER": c.userName}
}

// response is a read HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do performs one HTTP exchange with retries on 503 and on connection
// failures. POSTs are retried only when the connection could not be made
// at all, because a POST that reached the server may have started work
// (a second /launch would be a second request).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("skypilot: encode %s body: %w", path, err)
		}
	}
	deadline := time.Now().Add(c.cfg.RetryBudget)
	var lastErr error // the retryable failure that led to the current attempt
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, method, path, query, payload)
		retry := false
		switch {
		case err != nil:
			if ctx.Err() != nil {
				if lastErr != nil {
					return nil, fmt.Errorf("%w (gave up: %w)", lastErr, ctx.Err())
				}
				return nil, fmt.Errorf("skypilot: %s %s: %w", method, path, ctx.Err())
			}
			retry = method == http.MethodGet || isDialError(err)
			if !retry {
				return nil, fmt.Errorf("skypilot: %s %s: %w", method, path, err)
			}
			err = fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, err)
		case resp.status == http.StatusServiceUnavailable:
			retry = true
			err = fmt.Errorf("%w: %s %s: HTTP 503: %s", ErrUnavailable, method, path, snippet(resp.body))
		default:
			return resp, nil
		}
		lastErr = err
		wait := c.backoff(attempt)
		if time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		c.log.DebugContext(ctx, "skypilot: retrying", "method", method, "path", path, "attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBase << min(attempt, 20)
	if d <= 0 || d > c.cfg.RetryMax {
		d = c.cfg.RetryMax
	}
	// Full jitter: many workers hitting one restarted server spread out.
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (c *Client) once(ctx context.Context, method, path string, query url.Values, payload []byte) (*response, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(HeaderAPIVersion, strconv.Itoa(c.cfg.APIVersion))
	req.Header.Set(HeaderVersion, c.cfg.Version)
	req.Header.Set("User-Agent", "rh-skyworker")
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	hr, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hr.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	c.noteVersions(hr.Header)
	return &response{status: hr.StatusCode, header: hr.Header, body: b}, nil
}

func (c *Client) noteVersions(h http.Header) {
	v, err := strconv.Atoi(h.Get(HeaderAPIVersion))
	if err != nil {
		return
	}
	c.mu.Lock()
	c.srvAPI, c.srvVer = v, h.Get(HeaderVersion)
	c.mu.Unlock()
}

func snippet(b []byte) string {
	s := StripANSI(strings.TrimSpace(string(b)))
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// check maps non-2xx statuses shared by every endpoint to typed errors.
func (c *Client) check(method, path string, r *response) error {
	switch {
	case r.status >= 200 && r.status < 300:
		return nil
	case r.status == http.StatusBadRequest:
		var vm struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(r.body, &vm) == nil && vm.Error == "version_mismatch" {
			api, ver := c.ServerVersion()
			return &VersionMismatchError{Endpoint: c.Endpoint(), ClientAPIVersion: c.cfg.APIVersion,
				ServerAPIVersion: api, ServerVersion: ver, Message: StripANSI(vm.Message)}
		}
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		hint := "set " + EnvToken + " to a service-account token (sky_...) for " + c.Endpoint()
		if c.cfg.Token != "" {
			hint = "the token in " + EnvToken + " was refused by " + c.Endpoint() + "; check it has not expired or been revoked and that its role allows this operation"
		}
		return fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrUnauthorized, method, path, r.status, hint)
	case r.status == http.StatusNotFound && strings.HasPrefix(path, "/api/"):
		return fmt.Errorf("%w: %s", ErrRequestNotFound, detail(r.body))
	}
	return &HTTPError{Method: method, Path: path, Status: r.status, Body: snippet(r.body)}
}

// detail extracts FastAPI's {"detail": "..."}.
func detail(b []byte) string {
	var d struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(b, &d) == nil {
		if s, ok := d.Detail.(string); ok {
			return StripANSI(s)
		}
	}
	return snippet(b)
}

// post submits an operation and returns its request id, taken from the
// POST's own answer (every response carries a fresh id, so it must never
// be read from later responses).
func (c *Client) post(ctx context.Context, path string, body any) (string, error) {
	r, err := c.do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return "", err
	}
	if err := c.check(http.MethodPost, path, r); err != nil {
		return "", err
	}
	return requestID(path, r)
}

func requestID(path string, r *response) (string, error) {
	id := r.header.Get(HeaderRequestID)
	if id == "" {
		id = r.header.Get(HeaderLegacyRequestID)
	}
	if id == "" {
		return "", fmt.Errorf("skypilot: %s: answer carries no %s header", path, HeaderRequestID)
	}
	return id, nil
}
