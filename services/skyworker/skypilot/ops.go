package skypilot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// requestBase carries the fields every SkyPilot RequestBody needs. Without
// env_vars the server runs the request as its own user; with env_vars but
// no SKYPILOT_USER_ID it answers 500.
type requestBase struct {
	EnvVars map[string]string `json:"env_vars"`
}

// LaunchRequest is what Launch submits.
type LaunchRequest struct {
	ClusterName string
	TaskYAML    string // see TaskYAML
	// Down tears the cluster down when its job ends (deprecated upstream in
	// favour of autostop.down in the YAML; still accepted).
	Down         bool
	RetryUntilUp bool
}

// launchBody mirrors sky.server.requests.payloads.LaunchBody.
type launchBody struct {
	requestBase
	Task         string `json:"task"`
	ClusterName  string `json:"cluster_name"`
	RetryUntilUp bool   `json:"retry_until_up"`
	Dryrun       bool   `json:"dryrun"`
	Down         bool   `json:"down"`
	Fast         bool   `json:"fast"`
}

// LaunchResult is a launch's return value.
type LaunchResult struct {
	RequestID string
	JobID     *int    // nil when the task has no run section
	Handle    *Handle // nil when the server sent none
}

// Launch provisions (or reuses) a cluster and waits for it. SkyPilot reuses
// an UP cluster of the same name, so repeating a launch is safe.
func (c *Client) Launch(ctx context.Context, req LaunchRequest) (*LaunchResult, error) {
	id, err := c.SubmitLaunch(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.WaitLaunch(ctx, id)
}

// SubmitLaunch only submits the launch and returns its request id, so the
// caller can record it before waiting (and cancel or resume the wait
// after a restart).
func (c *Client) SubmitLaunch(ctx context.Context, req LaunchRequest) (string, error) {
	if err := ValidateClusterName(req.ClusterName); err != nil {
		return "", err
	}
	if req.TaskYAML == "" {
		return "", fmt.Errorf("skypilot: launch %s: empty task YAML", req.ClusterName)
	}
	return c.post(ctx, "/launch", launchBody{
		requestBase:  requestBase{c.envVars()},
		Task:         req.TaskYAML,
		ClusterName:  req.ClusterName,
		RetryUntilUp: req.RetryUntilUp,
		Down:         req.Down,
	})
}

// WaitLaunch waits for a launch request and decodes its result.
func (c *Client) WaitLaunch(ctx context.Context, id string) (*LaunchResult, error) {
	r, err := c.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	res := &LaunchResult{RequestID: id}
	if len(r.ReturnValue) == 0 || string(r.ReturnValue) == "null" {
		return res, nil
	}
	var rv struct {
		JobID  *int   `json:"job_id"`
		Handle string `json:"handle"`
	}
	if err := json.Unmarshal(r.ReturnValue, &rv); err != nil {
		return nil, fmt.Errorf("skypilot: decode launch result of %s: %w", id, err)
	}
	res.JobID = rv.JobID
	if res.Handle, err = DecodeHandle(rv.Handle); err != nil {
		return nil, fmt.Errorf("skypilot: launch %s: %w", id, err)
	}
	return res, nil
}

// stopOrDownBody mirrors payloads.StopOrDownBody.
type stopOrDownBody struct {
	requestBase
	ClusterName string `json:"cluster_name"`
	Purge       bool   `json:"purge"`
}

// Down terminates a cluster. An unknown cluster fails with an error for
// which IsClusterDoesNotExist is true.
func (c *Client) Down(ctx context.Context, cluster string, purge bool) error {
	_, err := c.submitAndWait(ctx, "/down", stopOrDownBody{requestBase{c.envVars()}, cluster, purge}, nil)
	return err
}

// Stop stops a cluster's machines, keeping its disks.
func (c *Client) Stop(ctx context.Context, cluster string, purge bool) error {
	_, err := c.submitAndWait(ctx, "/stop", stopOrDownBody{requestBase{c.envVars()}, cluster, purge}, nil)
	return err
}

// autostopBody mirrors payloads.AutostopBody.
type autostopBody struct {
	requestBase
	ClusterName string `json:"cluster_name"`
	IdleMinutes int    `json:"idle_minutes"`
	Down        bool   `json:"down"`
}

// Autostop sets the cluster's autostop: after idleMinutes idle it stops
// (or is torn down when down is true). idleMinutes < 0 cancels autostop.
func (c *Client) Autostop(ctx context.Context, cluster string, idleMinutes int, down bool) error {
	if idleMinutes < 0 {
		idleMinutes = -1
	}
	_, err := c.submitAndWait(ctx, "/autostop", autostopBody{requestBase{c.envVars()}, cluster, idleMinutes, down}, nil)
	return err
}

// Refresh modes of Status.
const (
	RefreshNone  = "NONE"
	RefreshAuto  = "AUTO"
	RefreshForce = "FORCE"
)

// statusBody mirrors payloads.StatusBody.
type statusBody struct {
	requestBase
	ClusterNames       []string `json:"cluster_names"`
	Refresh            string   `json:"refresh"`
	AllUsers           bool     `json:"all_users"`
	IncludeCredentials bool     `json:"include_credentials"`
	IncludeHandle      bool     `json:"include_handle"`
	SummaryResponse    bool     `json:"summary_response"`
}

// Status lists cluster records (all clusters when names is empty). refresh
// is RefreshNone (cached, may lag autostop), RefreshAuto or RefreshForce
// ("" means NONE). Unknown names are simply absent from the result.
func (c *Client) Status(ctx context.Context, names []string, refresh string) ([]ClusterRecord, error) {
	if refresh == "" {
		refresh = RefreshNone
	}
	switch refresh {
	case RefreshNone, RefreshAuto, RefreshForce:
	default:
		return nil, fmt.Errorf("skypilot: refresh %q is not NONE, AUTO or FORCE", refresh)
	}
	body := statusBody{requestBase: requestBase{c.envVars()}, ClusterNames: names, Refresh: refresh,
		AllUsers: true, IncludeCredentials: true, IncludeHandle: true}
	if len(names) == 0 {
		body.ClusterNames = nil
	}
	var recs []ClusterRecord
	if _, err := c.submitAndWait(ctx, "/status", body, &recs); err != nil {
		return nil, err
	}
	for i := range recs {
		h, err := DecodeHandle(recs[i].RawHandle)
		if err != nil {
			return nil, fmt.Errorf("skypilot: status of %s: %w", recs[i].Name, err)
		}
		recs[i].Handle = h
	}
	return recs, nil
}

// EnabledClouds lists the clouds the server can use.
func (c *Client) EnabledClouds(ctx context.Context) ([]string, error) {
	id, err := c.getRequest(ctx, "/enabled_clouds")
	if err != nil {
		return nil, err
	}
	r, err := c.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	var clouds []string
	if len(r.ReturnValue) > 0 {
		if err := json.Unmarshal(r.ReturnValue, &clouds); err != nil {
			return nil, fmt.Errorf("skypilot: decode enabled clouds: %w", err)
		}
	}
	return clouds, nil
}

func (c *Client) getRequest(ctx context.Context, path string) (string, error) {
	r, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return "", err
	}
	if err := c.check(http.MethodGet, path, r); err != nil {
		return "", err
	}
	return requestID(path, r)
}
