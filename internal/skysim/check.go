package skysim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Exchange is one HTTP request the server received, with the version
// headers it declared ("" when absent).
type Exchange struct {
	Method, Path        string
	APIVersion, Version string
}

// Exchanges returns every HTTP request received, in order, so tests can
// check what a client declared on each one.
func (s *Server) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.exchanges)
}

// checkedClouds are the clouds /check goes through, in the order SkyPilot
// prints them (sorted by name).
var checkedClouds = []string{"AWS", "Azure", "GCP", "Kubernetes", "Lambda"}

// notSetUp is what SkyPilot says of a cloud whose credentials are missing.
var notSetUp = map[string]string{
	"AWS":        "AWS credentials are not set. Run the following commands:\n        $ pip install boto3\n        $ aws configure\n      For more info: https://docs.skypilot.co/en/latest/getting-started/installation.html#aws",
	"Azure":      "~/.azure/msal_token_cache.json does not exist. Run the following commands:\n        $ az login\n        $ az account set -s <subscription_id>",
	"GCP":        "GCP tools are not installed. Run the following commands:\n        $ pip install google-api-python-client\n        $ conda install -c conda-forge google-cloud-sdk -y",
	"Kubernetes": "No available context found in kubeconfig. Check if you have a valid kubeconfig file and check that it is stored at ~/.kube/config.",
	"Lambda":     "Failed to access Lambda Cloud with credentials. To configure credentials, go to:\n          https://cloud.lambdalabs.com/api-keys\n        to generate API key and add the line\n          api_key = [YOUR API KEY]\n        to ~/.lambda_cloud/lambda_keys",
}

// opCheck re-runs the credential checks as sky.check does: it prints, per
// cloud, "enabled [capabilities]" or "disabled" with a "Reason [...]:" line
// (in colour, as the real log does) and returns workspace → enabled clouds.
func (s *Server) opCheck(body map[string]json.RawMessage) (string, string, func(context.Context, *request) (any, error), int, error) {
	var only []string
	_ = json.Unmarshal(body["clouds"], &only)
	return "sky.check", "", func(_ context.Context, r *request) (any, error) {
		var b strings.Builder
		b.WriteString("Checking credentials to enable infra for SkyPilot.\n")
		var enabled []string
		for _, c := range checkedClouds {
			if len(only) > 0 && !slices.ContainsFunc(only, func(o string) bool { return strings.EqualFold(o, c) }) {
				continue
			}
			if slices.Contains(s.opts.EnabledClouds, c) {
				enabled = append(enabled, c)
				fmt.Fprintf(&b, "\x1b[32m\x1b[22m  %s: enabled [compute, storage]\x1b[0m\n", c)
				continue
			}
			reason := s.opts.DisabledReasons[c]
			if reason == "" {
				reason = notSetUp[c]
			}
			fmt.Fprintf(&b, "\x1b[2m  %s: disabled \x1b[0m\n", c)
			fmt.Fprintf(&b, "    Reason [compute, storage]: %s\n", reason)
		}
		b.WriteString("\n\U0001F389 Enabled infra \U0001F389\n")
		for _, c := range enabled {
			fmt.Fprintf(&b, "  \x1b[32m%s [compute, storage]\x1b[0m\n", c)
		}
		b.WriteString("\n\x1b[2m\nTo enable a cloud, follow the hints above and rerun: \x1b[0m\x1b[1msky check\x1b[0m\n")
		s.print(r, b.String())
		return map[string]any{"default": enabled}, nil
	}, 0, nil
}

// print appends to a request's log and wakes its followers.
func (s *Server) print(r *request, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.log = append(r.log, text...)
	close(r.logged)
	r.logged = make(chan struct{})
}

// handleStream serves GET /api/stream?request_id=ID[&follow=true]: the
// request's log as plain text, followed until the request ends when asked.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("request_id")
	req, code := s.resolve(id)
	if req == nil {
		writeJSON(w, code, map[string]any{"detail": fmt.Sprintf("Request %q not found", id)})
		return
	}
	follow := r.URL.Query().Get("follow") != "false" // the server's default is to follow
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	sent := 0
	for {
		s.mu.Lock()
		chunk, wake := req.log[sent:], req.logged
		sent = len(req.log)
		s.mu.Unlock()
		if len(chunk) > 0 {
			_, _ = w.Write(chunk)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		if !follow {
			return
		}
		select {
		case <-req.done:
			s.mu.Lock()
			rest := req.log[sent:]
			s.mu.Unlock()
			_, _ = w.Write(rest)
			return
		case <-wake:
		case <-r.Context().Done():
			return
		case <-s.baseCtx.Done():
			return
		}
	}
}
