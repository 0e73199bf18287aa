package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/events/schema"
)

func requestJSON(id, data string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"ci/nightly","type":"dev.rh.cluster.request.v1","subject":"train",` +
		`"time":"` + time.Now().UTC().Format(time.RFC3339) + `","datacontenttype":"application/json","data":` + data + `}`
}

// A request as a publisher in another language writes it: the schema and
// the decoder agree on what is a request and what is not.
func TestRequestsDecodeStrictlyAndMatchTheirSchema(t *testing.T) {
	good := []string{
		`{"op":"create","cluster":"train","spec":{"kind":"ondemand","ondemand":{"instance_type":"A100:1"}}}`,
		`{"op":"create","cluster":"train","spec":{"kind":"byo","byo":{"ips":["10.0.0.1"]}},"no_up":true}`,
		`{"op":"up","cluster":"train"}`,
		`{"op":"teardown","cluster":"train"}`,
		`{"op":"delete","cluster":"train","force":true}`,
	}
	for _, d := range good {
		b := requestJSON("0b6c-1", d)
		env, req, err := events.DecodeRequest([]byte(b))
		if err != nil {
			t.Errorf("%s: %v", d, err)
			continue
		}
		if env.ID != "0b6c-1" || req.Cluster != "train" {
			t.Errorf("%s: decoded %+v %+v", d, env, req)
		}
		if err := schema.Validate(events.TypeRequest, []byte(b)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	bad := []struct{ data, field string }{
		{`{"op":"launch","cluster":"train"}`, "data.op"},
		{`{"op":"create","cluster":"train"}`, "data.spec"},
		{`{"op":"up","cluster":"train","spec":{"kind":"byo","byo":{"ips":["a"]}}}`, "data.spec"},
		{`{"op":"teardown","cluster":"train","force":true}`, "data.force"},
		{`{"op":"up","cluster":"train","no_up":true}`, "data.no_up"},
		{`{"op":"up","cluster":"other"}`, "subject"},
		{`{"op":"up","cluster":"train","owner":"admin"}`, "data"},
		{`{"op":"create","cluster":"train","spec":{"kind":"byo","byo":{"ips":["a"]}},"secrets":{"ssh_private_key":"k"}}`, "data"},
	}
	for _, c := range bad {
		b := requestJSON("x", c.data)
		_, _, err := events.DecodeRequest([]byte(b))
		var de *events.DecodeError
		if !errors.As(err, &de) || de.Field != c.field || !errors.Is(err, events.ErrDecode) {
			t.Errorf("%s: got %v, want a decode error on %s", c.data, err, c.field)
		}
		// A schema cannot compare two fields: subject == data.cluster is the
		// decoder's alone.
		if err := schema.Validate(events.TypeRequest, []byte(b)); err == nil && c.field != "subject" {
			t.Errorf("%s: the schema accepts what the decoder refuses", c.data)
		}
	}
	if _, _, err := events.DecodeRequest([]byte(requestJSON(strings.Repeat("x", 300), good[2]))); err == nil {
		t.Error("a 300-byte id was accepted")
	}
	other := strings.Replace(requestJSON("x", good[2]), "request.v1", "request.v2", 1)
	if _, _, err := events.DecodeRequest([]byte(other)); err == nil || !strings.Contains(err.Error(), "unsupported version") {
		t.Errorf("v2: %v, want unsupported version", err)
	}
}

func TestOutcomesMatchTheirSchema(t *testing.T) {
	for _, o := range []events.Outcome{
		{RequestID: "r1", Op: "create", Cluster: "train", Result: events.OutcomeAccepted, Phase: rh.PhasePending, Message: "waiting", Generation: 1},
		{RequestID: "r1", Op: "create", Cluster: "train", Result: events.OutcomeState, Phase: rh.PhaseUp, Generation: 1, Done: true},
		{RequestID: "r2", Op: "up", Cluster: "train", Result: events.OutcomeRefused, Code: rh.EFORBIDDEN, Reason: "viewer", Done: true, Duplicate: true},
		{RequestID: "r3", Result: events.OutcomeRefused, Code: rh.EINVALID, Reason: "events: envelope: bad", Done: true},
	} {
		env, err := events.NewOutcome("rh/registry", 2, o)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Marshal()
		if err := schema.Validate(events.TypeOutcome, b); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
