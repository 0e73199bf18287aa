// Package lazyre holds regular expressions compiled on first use.
//
// rhcli is one binary: every start runs the package initialisation of
// everything it links, services included. A regexp.MustCompile in a
// package-level var costs every start its compilation (a counted
// repetition such as {0,63} compiles to that many copies), even for a
// command that never matches it. New defers the work to the first match.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled on first use. An invalid
// expression panics there, as regexp.MustCompile would at start-up; each
// package's tests exercise its expressions.
type Regexp struct {
	expr string
	re   func() *regexp.Regexp
}

// New returns expr, to be compiled on first use.
func New(expr string) *Regexp {
	return &Regexp{expr: expr, re: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
}

// Regexp is the compiled expression.
func (r *Regexp) Regexp() *regexp.Regexp { return r.re() }

// MatchString reports whether s contains a match.
func (r *Regexp) MatchString(s string) bool { return r.re().MatchString(s) }

// ReplaceAllString is regexp.Regexp.ReplaceAllString.
func (r *Regexp) ReplaceAllString(src, repl string) string { return r.re().ReplaceAllString(src, repl) }

// String is the source text.
func (r *Regexp) String() string { return r.expr }
