// Package schema holds the JSON Schemas (draft 2020-12) of rh's event
// types, one file per type named <type>.json, for publishers and consumers in
// other languages, and validates encoded events against them. It is kept
// apart from package events so the services' binary does not carry a JSON
// Schema compiler it never uses at run time; tests use it to prove that what
// the code publishes matches the checked-in schemas.
package schema

import (
	"bytes"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rhq/rh/events"
)

// Files holds one JSON Schema per event type, named json/<type>.json.
//
//go:embed json/*.json
var Files embed.FS

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

// Validate checks an encoded event against the schema of its type.
func Validate(eventType string, encoded []byte) error {
	compileOnce.Do(compileSchemas)
	if compileErr != nil {
		return compileErr
	}
	s, ok := compiled[eventType]
	if !ok {
		return fmt.Errorf("schema: no schema for type %q", eventType)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(encoded))
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("schema: %s does not match its schema: %w", eventType, err)
	}
	return nil
}

func compileSchemas() {
	compiled = map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	types := []string{events.TypeCreate, events.TypeTeardown, events.TypeUpdate, events.TypeRefresh, events.TypeState, events.TypeRequest, events.TypeOutcome}
	for _, t := range types {
		b, err := Files.ReadFile("json/" + t + ".json")
		if err != nil {
			compileErr = fmt.Errorf("schema: %s: %w", t, err)
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			compileErr = fmt.Errorf("schema: %s: %w", t, err)
			return
		}
		if err := c.AddResource(t+".json", doc); err != nil {
			compileErr = fmt.Errorf("schema: %s: %w", t, err)
			return
		}
	}
	for _, t := range types {
		s, err := c.Compile(t + ".json")
		if err != nil {
			compileErr = fmt.Errorf("schema: %s: %w", t, err)
			return
		}
		compiled[t] = s
	}
}
