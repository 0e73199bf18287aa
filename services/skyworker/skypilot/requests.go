package skypilot

import (
	"context"
	"encoding/json"

	"fmt"
	"net/http"
	"net/url"
	"time"
)

// RequestStatus is the state of an API request.
type RequestStatus string

const (
	StatusPending   RequestStatus = "PENDING"
	StatusWaiting   RequestStatus = "WAITING" // API ≥ 55: queued on a resource
	StatusRunning   RequestStatus = "RUNNING"
	StatusSucceeded RequestStatus = "SUCCEEDED"
	StatusFailed    RequestStatus = "FAILED"
	StatusCancelled RequestStatus = "CANCELLED"
)

// Terminal reports whether the request has finished.
func (s RequestStatus) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// Request is a request payload as /api/get and /api/status return it, with
// the double-encoded fields decoded.
type Request struct {
	RequestID   string        `json:"request_id"`
	Name        string        `json:"name"`
	Status      RequestStatus `json:"status"`
	CreatedAt   float64       `json:"created_at"`
	FinishedAt  *float64      `json:"finished_at,omitempty"`
	ClusterName string        `json:"cluster_name,omitempty"`
	StatusMsg   string        `json:"status_msg,omitempty"`
	ShouldRetry bool          `json:"should_retry,omitempty"`
	UserID      string        `json:"user_id,omitempty"`
	UserName    string        `json:"user_name,omitempty"`

	// ReturnValue is the JSON inside the return_value string (null when
	// the request has not succeeded).
	ReturnValue json.RawMessage `json:"-"`
	// Err is the decoded error of a FAILED request.
	Err *RequestError `json:"-"`
}

// wireRequest mirrors the server's encoded payload.
type wireRequest struct {
	Request
	RawReturn *string `json:"return_value"`
	RawError  *string `json:"error"`
}

func decodeRequest(b []byte) (*Request, error) {
	var w wireRequest
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("skypilot: decode request payload: %w", err)
	}
	return w.finish()
}

func (w *wireRequest) finish() (*Request, error) {
	r := w.Request
	if w.RawReturn != nil && *w.RawReturn != "" {
		if !json.Valid([]byte(*w.RawReturn)) {
			return nil, fmt.Errorf("skypilot: request %s: return_value is not JSON", r.RequestID)
		}
		r.ReturnValue = json.RawMessage(*w.RawReturn)
	}
	if w.RawError != nil && *w.RawError != "" && *w.RawError != "null" {
		var e struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			// object: a pickled exception; deliberately ignored.
		}
		if err := json.Unmarshal([]byte(*w.RawError), &e); err != nil {
			return nil, fmt.Errorf("skypilot: request %s: bad error field: %w", r.RequestID, err)
		}
		r.Err = &RequestError{RequestID: r.RequestID, Name: r.Name, Type: e.Type, Message: StripANSI(e.Message)}
	}
	return &r, nil
}

// Result turns a finished request into its outcome: nil for SUCCEEDED,
// the *RequestError for FAILED, ErrRequestCancelled for CANCELLED.
func (r *Request) Result() error {
	switch r.Status {
	case StatusSucceeded:
		return nil
	case StatusFailed:
		if r.Err != nil {
			return r.Err
		}
		return &RequestError{RequestID: r.RequestID, Name: r.Name, Type: "UnknownError", Message: r.StatusMsg}
	case StatusCancelled:
		return fmt.Errorf("%w: %s %s", ErrRequestCancelled, r.Name, r.RequestID)
	}
	return fmt.Errorf("skypilot: request %s is still %s", r.RequestID, r.Status)
}

// Get blocks on /api/get until the request finishes (or ctx ends) and
// returns its payload. A FAILED request is returned with a nil error;
// use Result or Wait for the outcome.
func (c *Client) Get(ctx context.Context, id string) (*Request, error) {
	q := url.Values{"request_id": {id}}
	for {
		r, err := c.do(ctx, http.MethodGet, "/api/get", q, nil)
		if err != nil {
			return nil, err
		}
		switch {
		case r.status == http.StatusOK:
			return decodeRequest(r.body)
		case r.status == http.StatusInternalServerError:
			// A failed request: {"detail": <payload object>}.
			var d struct {
				Detail json.RawMessage `json:"detail"`
			}
			if json.Unmarshal(r.body, &d) == nil && len(d.Detail) > 0 && d.Detail[0] == '{' {
				return decodeRequest(d.Detail)
			}
		}
		if err := c.check(http.MethodGet, "/api/get", r); err != nil {
			return nil, err
		}
		return nil, &HTTPError{Method: http.MethodGet, Path: "/api/get", Status: r.status, Body: snippet(r.body)}
	}
}

// RequestStatuses polls /api/status for the given ids (prefixes allowed).
// The payloads it returns may omit return values; use Get for those.
func (c *Client) RequestStatuses(ctx context.Context, ids ...string) ([]*Request, error) {
	q := url.Values{}
	for _, id := range ids {
		q.Add("request_ids", id)
	}
	r, err := c.do(ctx, http.MethodGet, "/api/status", q, nil)
	if err != nil {
		return nil, err
	}
	if err := c.check(http.MethodGet, "/api/status", r); err != nil {
		return nil, err
	}
	var ws []wireRequest
	if err := json.Unmarshal(r.body, &ws); err != nil {
		return nil, fmt.Errorf("skypilot: decode /api/status: %w", err)
	}
	out := make([]*Request, 0, len(ws))
	for i := range ws {
		req, err := ws[i].finish()
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	return out, nil
}

// Wait waits for the request to finish and returns its payload together
// with its outcome (see Request.Result). It blocks on /api/get, or polls
// /api/status when Config.PollStatus is set; either way only ctx bounds
// the wait, because launches legitimately take tens of minutes. A request
// the server loses shows up as ErrRequestNotFound.
func (c *Client) Wait(ctx context.Context, id string) (*Request, error) {
	if c.cfg.PollStatus {
		if err := c.pollUntilDone(ctx, id); err != nil {
			return nil, err
		}
	}
	req, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !req.Status.Terminal() {
		return req, fmt.Errorf("skypilot: /api/get returned request %s in state %s", id, req.Status)
	}
	return req, req.Result()
}

func (c *Client) pollUntilDone(ctx context.Context, id string) error {
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	var last RequestStatus
	for {
		reqs, err := c.RequestStatuses(ctx, id)
		if err != nil {
			return err
		}
		if len(reqs) == 0 {
			return fmt.Errorf("%w: %s", ErrRequestNotFound, id)
		}
		if st := reqs[0].Status; st != last {
			c.log.DebugContext(ctx, "skypilot: request state", "request_id", id, "name", reqs[0].Name, "status", st)
			last = st
		}
		if reqs[0].Status.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("skypilot: waiting for request %s (last %s): %w", id, last, ctx.Err())
		case <-t.C:
		}
	}
}

// submitAndWait posts an operation and waits for its outcome, decoding
// the return value into out (when non-nil).
func (c *Client) submitAndWait(ctx context.Context, path string, body, out any) (string, error) {
	id, err := c.post(ctx, path, body)
	if err != nil {
		return "", err
	}
	req, err := c.Wait(ctx, id)
	if err != nil {
		return id, err
	}
	if out != nil && len(req.ReturnValue) > 0 {
		if err := json.Unmarshal(req.ReturnValue, out); err != nil {
			return id, fmt.Errorf("skypilot: decode %s result of %s: %w", req.Name, id, err)
		}
	}
	return id, nil
}

// Cancel asks the server to cancel requests (ids or prefixes) and returns
// the ids it cancelled. Cancellation is not immediate (skypilot#7703):
// Wait on the cancelled request to see its final state.
func (c *Client) Cancel(ctx context.Context, ids ...string) ([]string, error) {
	body := struct {
		requestBase
		RequestIDs []string `json:"request_ids"`
		All        bool     `json:"all"`
	}{requestBase{c.envVars()}, ids, false}
	var cancelled []string
	_, err := c.submitAndWait(ctx, "/api/cancel", body, &cancelled)
	return cancelled, err
}

// Health is the answer of GET /api/health.
type Health struct {
	Status           string `json:"status"`
	APIVersion       int    `json:"-"`
	Version          string `json:"version"`
	Commit           string `json:"commit"`
	BasicAuthEnabled bool   `json:"basic_auth_enabled"`
	User             any    `json:"user,omitempty"`
}

// Health reads the server's status and versions (no auth needed) and
// fails with a *VersionMismatchError when the server is older than
// MinServerAPIVersion.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	r, err := c.do(ctx, http.MethodGet, "/api/health", nil, nil)
	if err != nil {
		return nil, err
	}
	if err := c.check(http.MethodGet, "/api/health", r); err != nil {
		return nil, err
	}
	var h struct {
		Health
		APIVersion json.RawMessage `json:"api_version"`
	}
	if err := json.Unmarshal(r.body, &h); err != nil {
		return nil, fmt.Errorf("skypilot: decode /api/health: %w", err)
	}
	out := h.Health
	// Older servers send api_version as a string.
	var s string
	if json.Unmarshal(h.APIVersion, &out.APIVersion) != nil && json.Unmarshal(h.APIVersion, &s) == nil {
		fmt.Sscan(s, &out.APIVersion)
	}
	c.mu.Lock()
	c.srvAPI, c.srvVer = out.APIVersion, out.Version
	c.mu.Unlock()
	if out.APIVersion != 0 && out.APIVersion < MinServerAPIVersion {
		return &out, &VersionMismatchError{Endpoint: c.Endpoint(), ClientAPIVersion: c.cfg.APIVersion,
			ServerAPIVersion: out.APIVersion, ServerVersion: out.Version,
			Message: fmt.Sprintf("this client needs server API version ≥ %d", MinServerAPIVersion)}
	}
	return &out, nil
}
