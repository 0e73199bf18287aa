package skysim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/rhq/rh/internal/pickle"
)

const (
	hdrAPIVersion = "X-SkyPilot-API-Version"
	hdrVersion    = "X-SkyPilot-Version"
	hdrRequestID  = "X-Skypilot-Request-ID"
	// waitingSince is the first API version that knows WAITING.
	waitingSince = 55
)

type ctxKey struct{}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /api/health", s.handleHealth)
	m.HandleFunc("GET /api/get", s.handleGet)
	m.HandleFunc("GET /api/status", s.handleAPIStatus)
	m.HandleFunc("GET /api/stream", s.handleStream)
	m.HandleFunc("POST /api/cancel", s.post(s.opCancel))
	m.HandleFunc("POST /launch", s.post(s.opLaunch))
	m.HandleFunc("POST /down", s.post(s.opDown))
	m.HandleFunc("POST /stop", s.post(s.opStop))
	m.HandleFunc("POST /autostop", s.post(s.opAutostop))
	m.HandleFunc("POST /status", s.post(s.opStatus))
	m.HandleFunc("POST /check", s.post(s.opCheck))
	m.HandleFunc("GET /enabled_clouds", s.handleEnabledClouds)
	s.mux = m
}

// ServeHTTP applies the cross-cutting behaviour of the real server: 503
// storms, auth, version headers, and a fresh request id on every answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A fresh id on every response; POST handlers overwrite it with the
	// id of the request they created.
	w.Header().Set(hdrRequestID, uuid.NewString())
	s.mu.Lock()
	s.requestCount++
	storm := false
	if s.storm503N > 0 {
		s.storm503N--
		storm = true
	} else if time.Now().Before(s.storm503End) {
		storm = true
	}
	s.mu.Unlock()
	if storm {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"detail": "Server is overloaded, please try again later."})
		return
	}
	apiV, ver := r.Header.Get(hdrAPIVersion), r.Header.Get(hdrVersion)
	s.mu.Lock()
	s.exchanges = append(s.exchanges, Exchange{Method: r.Method, Path: r.URL.Path, APIVersion: apiV, Version: ver})
	s.mu.Unlock()
	clientAPI := 0
	if apiV != "" && ver != "" {
		n, err := strconv.Atoi(apiV)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"detail": fmt.Sprintf("Header %s: %s is not a valid API version.", hdrAPIVersion, apiV)})
			return
		}
		w.Header().Set(hdrAPIVersion, strconv.Itoa(s.opts.APIVersion))
		w.Header().Set(hdrVersion, s.opts.Version)
		if n < s.opts.MinAPIVersion {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "version_mismatch",
				"message": fmt.Sprintf("\x1b[33mYour SkyPilot client version is too old: %s\n\x1b[0mThe server is running on %s and the minimum compatible version is %s.", ver, s.opts.Version, "0.11.0")})
			return
		}
		clientAPI = n
	}
	if s.opts.Token != "" && r.URL.Path != "/api/health" {
		auth := r.Header.Get("Authorization")
		switch {
		case auth == "":
			writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Authentication required"})
			return
		case auth != "Bearer "+s.opts.Token:
			writeJSON(w, http.StatusForbidden, map[string]any{"detail": "Invalid or expired service account token"})
			return
		}
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, clientAPI)))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "healthy", "api_version": s.opts.APIVersion, "version": s.opts.Version,
		"version_on_disk": s.opts.Version, "commit": "skysim", "basic_auth_enabled": false,
		"user": map[string]any{"name": "skysim", "id": "00000000"},
	})
}

// opFunc validates a body and returns the work to run asynchronously.
type opFunc func(body map[string]json.RawMessage) (name, cluster string, fn func(context.Context, *request) (any, error), status int, err error)

// post wraps an operation: JSON body checks (422), env_vars checks (500),
// then an async request whose id goes in the response header.
func (s *Server) post(op opFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		raw, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		var body map[string]json.RawMessage
		if err != nil || mt != "application/json" || json.Unmarshal(raw, &body) != nil || body == nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{
				"type": "json_invalid", "loc": []any{"body"}, "msg": "JSON decode error"}}})
			return
		}
		var env map[string]string
		if e, ok := body["env_vars"]; ok {
			if json.Unmarshal(e, &env) != nil || env["SKYPILOT_USER_ID"] == "" {
				writeJSON(w, http.StatusInternalServerError, map[string]any{"detail": "Internal Server Error"})
				return
			}
		}
		name, clusterName, fn, code, err := op(body)
		if err != nil {
			writeJSON(w, code, map[string]any{"detail": err.Error()})
			return
		}
		req := s.submit(name, clusterName, env, fn)
		w.Header().Set(hdrRequestID, req.id)
		writeJSON(w, http.StatusOK, nil)
	}
}

func (s *Server) handleEnabledClouds(w http.ResponseWriter, r *http.Request) {
	req := s.submit("sky.enabled_clouds", "", nil, func(context.Context, *request) (any, error) {
		return s.opts.EnabledClouds, nil
	})
	w.Header().Set(hdrRequestID, req.id)
	writeJSON(w, http.StatusOK, nil)
}

// payload encodes a request as the server does: return_value and error are
// JSON strings; WAITING is RUNNING for clients older than API 55.
func (s *Server) payload(r *request, clientAPI int) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := r.status
	if st == "WAITING" && clientAPI < waitingSince {
		st = "RUNNING"
	}
	rv, _ := json.Marshal(r.returnValue)
	p := map[string]any{
		"request_id": r.id, "name": r.name, "entrypoint": r.name, "request_body": "{}",
		"status": st, "return_value": string(rv), "error": nil, "pid": nil,
		"created_at": r.createdAt, "user_id": r.userID, "user_name": r.userName,
		"cluster_name": nilIfEmpty(r.cluster), "status_msg": nilIfEmpty(r.statusMsg),
		"should_retry": false, "finished_at": nil,
	}
	if r.finishedAt != 0 {
		p["finished_at"] = r.finishedAt
	}
	if r.status == "FAILED" {
		obj := pickle.NewDict()
		obj.Set("type", r.errType)
		obj.Set("message", r.errMsg)
		b64, _ := pickle.DumpsBase64(obj)
		e, _ := json.Marshal(map[string]any{"object": b64, "type": r.errType,
			"message": "\x1b[31m" + r.errMsg + "\x1b[0m"})
		p["error"] = string(e)
		p["return_value"] = "null"
	}
	return p
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func clientAPI(r *http.Request) int {
	v, _ := r.Context().Value(ctxKey{}).(int)
	return v
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("request_id")
	req, code := s.resolve(id)
	if req == nil {
		msg := fmt.Sprintf("Request %q not found", id)
		if code == http.StatusBadRequest {
			msg = fmt.Sprintf("Request ID prefix %q matches multiple requests", id)
		}
		writeJSON(w, code, map[string]any{"detail": msg})
		return
	}
	select {
	case <-req.done:
	case <-r.Context().Done():
		return
	case <-s.baseCtx.Done():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"detail": "Server is shutting down"})
		return
	}
	p := s.payload(req, clientAPI(r))
	if p["status"] == "FAILED" {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"detail": p})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleAPIStatus(w http.ResponseWriter, r *http.Request) {
	ids := r.URL.Query()["request_ids"]
	var reqs []*request
	if len(ids) == 0 {
		s.mu.Lock()
		for _, id := range s.order {
			if q, ok := s.requests[id]; ok {
				reqs = append(reqs, q)
			}
		}
		s.mu.Unlock()
	}
	for _, id := range ids {
		req, code := s.resolve(id)
		if code == http.StatusBadRequest {
			writeJSON(w, code, map[string]any{"detail": fmt.Sprintf("Request ID prefix %q matches multiple requests", id)})
			return
		}
		if req != nil {
			reqs = append(reqs, req)
		}
	}
	out := []map[string]any{}
	for _, q := range reqs {
		out = append(out, s.payload(q, clientAPI(r)))
	}
	writeJSON(w, http.StatusOK, out)
}

// ---- body helpers ----

func str(body map[string]json.RawMessage, k string) (string, bool) {
	var v string
	raw, ok := body[k]
	if !ok || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

func boolean(body map[string]json.RawMessage, k string) bool {
	var v bool
	_ = json.Unmarshal(body[k], &v)
	return v
}

func missing(field string) error {
	return fmt.Errorf("[{'type': 'missing', 'loc': ('body', '%s'), 'msg': 'Field required'}]", field)
}
