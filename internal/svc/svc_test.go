package svc

import (
	"errors"
	"strings"
	"testing"

	rh "github.com/rhq/rh"
)

func TestDecodeIsStrict(t *testing.T) {
	type req struct {
		Name string `json:"name"`
	}
	if r, err := Decode[req]([]byte(` {"name":"a"} `)); err != nil || r.Name != "a" {
		t.Fatalf("Decode = %+v, %v", r, err)
	}
	if r, err := Decode[req]([]byte(" \n")); err != nil || r != (req{}) {
		t.Fatalf("empty body = %+v, %v; want the zero request", r, err)
	}
	_, err := Decode[req]([]byte(`{"name":"a","stream":"x"}`))
	if !errors.Is(err, rh.ErrInvalid) || !strings.Contains(err.Error(), `"stream"`) {
		t.Fatalf("unknown field: %v, want invalid naming it", err)
	}
	if _, err := Decode[req]([]byte(`{"name":`)); !errors.Is(err, rh.ErrInvalid) {
		t.Fatalf("truncated body: %v, want invalid", err)
	}
}
