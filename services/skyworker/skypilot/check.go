package skypilot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// checkBody mirrors payloads.CheckBody.
type checkBody struct {
	requestBase
	Clouds  []string `json:"clouds"`
	Verbose bool     `json:"verbose"`
}

// Check re-runs credential checks (all clouds when clouds is empty) and
// returns the server's result as JSON (its shape changed across versions:
// a list of clouds, or workspace → clouds).
func (c *Client) Check(ctx context.Context, clouds []string) (json.RawMessage, error) {
	body := checkBody{requestBase: requestBase{c.envVars()}, Clouds: clouds}
	if len(clouds) == 0 {
		body.Clouds = nil
	}
	var out json.RawMessage
	_, err := c.submitAndWait(ctx, "/check", body, &out)
	return out, err
}

// CloudCheck is what a credential check found.
type CloudCheck struct {
	RequestID string
	// Enabled are the clouds the server can use.
	Enabled []string
	// Disabled maps each cloud the check found disabled to SkyPilot's
	// reason ("" when its log gave none).
	Disabled map[string]string
}

// CheckClouds re-runs SkyPilot's credential checks, as `sky check` does, and
// reads the request's log for why each disabled cloud is disabled: the
// return value names only the enabled ones.
func (c *Client) CheckClouds(ctx context.Context) (*CloudCheck, error) {
	id, err := c.post(ctx, "/check", checkBody{requestBase: requestBase{c.envVars()}})
	if err != nil {
		return nil, err
	}
	req, err := c.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	cc := &CloudCheck{RequestID: id, Enabled: EnabledOf(req.ReturnValue), Disabled: map[string]string{}}
	log, err := c.StreamLog(ctx, id)
	if err != nil {
		return cc, fmt.Errorf("skypilot: reading the check's log: %w", err)
	}
	enabled, disabled := ParseCheckLog(log)
	if len(cc.Enabled) == 0 {
		cc.Enabled = enabled
	}
	for cloud, reason := range disabled {
		if !slices.ContainsFunc(cc.Enabled, func(e string) bool { return strings.EqualFold(e, cloud) }) {
			cc.Disabled[cloud] = reason
		}
	}
	return cc, nil
}

// StreamLog returns a request's log as plain text (GET /api/stream, which
// follows the request until it ends).
func (c *Client) StreamLog(ctx context.Context, id string) (string, error) {
	q := url.Values{"request_id": {id}, "format": {"plain"}, "follow": {"true"}}
	r, err := c.do(ctx, http.MethodGet, "/api/stream", q, nil)
	if err != nil {
		return "", err
	}
	if err := c.check(http.MethodGet, "/api/stream", r); err != nil {
		return "", err
	}
	return string(r.body), nil
}

// EnabledOf reads /check's or /enabled_clouds' answer: a list of clouds, or
// workspace → clouds, depending on the server's version.
func EnabledOf(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var byWS map[string][]string
	if json.Unmarshal(raw, &byWS) != nil {
		return nil
	}
	var out []string
	for _, cs := range byWS {
		for _, c := range cs {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

var (
	checkCloudRE  = regexp.MustCompile(`^  (\S[^:]*): (enabled|disabled)\b`)
	checkReasonRE = regexp.MustCompile(`^    Reason \[[^\]]*\]: ?(.*)$`)
)

// ParseCheckLog reads `sky check`'s output (as the check request logs it)
// into the clouds it enabled and, for each disabled one, its reasons — the
// "Reason [capabilities]: ..." lines and their indented continuations, on
// one line.
func ParseCheckLog(log string) (enabled []string, disabled map[string]string) {
	disabled = map[string]string{}
	cloud, inReason := "", false
	add := func(text string) {
		text = strings.TrimSpace(text)
		if text == "" {
			return
		}
		if prev := disabled[cloud]; prev != "" {
			sep := " "
			if !inReason {
				sep = "; "
			}
			text = prev + sep + text
		}
		disabled[cloud] = text
	}
	for _, line := range strings.Split(StripANSI(log), "\n") {
		line = strings.TrimRight(line, " \r")
		if m := checkCloudRE.FindStringSubmatch(line); m != nil {
			cloud, inReason = m[1], false
			if m[2] == "enabled" {
				enabled = append(enabled, cloud)
			} else {
				disabled[cloud] = ""
			}
			continue
		}
		if cloud == "" {
			continue
		}
		if _, off := disabled[cloud]; !off {
			continue
		}
		if m := checkReasonRE.FindStringSubmatch(line); m != nil {
			inReason = false
			add(m[1])
			inReason = true
			continue
		}
		if inReason && strings.HasPrefix(line, "      ") {
			add(line)
			continue
		}
		inReason = false
		if !strings.HasPrefix(line, "    ") {
			cloud = ""
		}
	}
	return enabled, disabled
}
