package events

import (
	"bytes"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schemas holds one JSON Schema (draft 2020-12) per event type, named
// <type>.json, for publishers and consumers in other languages.
//
//go:embed schemas/*.json
var Schemas embed.FS

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

// ValidateSchema checks an encoded event against the schema of its type.
func ValidateSchema(eventType string, encoded []byte) error {
	compileOnce.Do(compileSchemas)
	if compileErr != nil {
		return compileErr
	}
	s, ok := compiled[eventType]
	if !ok {
		return fmt.Errorf("events: no schema for type %q", eventType)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(encoded))
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("events: %s does not match its schema: %w", eventType, err)
	}
	return nil
}

func compileSchemas() {
	compiled = map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	types := []string{TypeCreate, TypeTeardown, TypeUpdate, TypeRefresh, TypeState}
	for _, t := range types {
		b, err := Schemas.ReadFile("schemas/" + t + ".json")
		if err != nil {
			compileErr = fmt.Errorf("events: schema of %s: %w", t, err)
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			compileErr = fmt.Errorf("events: schema of %s: %w", t, err)
			return
		}
		if err := c.AddResource(t+".json", doc); err != nil {
			compileErr = fmt.Errorf("events: schema of %s: %w", t, err)
			return
		}
	}
	for _, t := range types {
		s, err := c.Compile(t + ".json")
		if err != nil {
			compileErr = fmt.Errorf("events: schema of %s: %w", t, err)
			return
		}
		compiled[t] = s
	}
}
