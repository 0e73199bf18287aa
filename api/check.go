package api

import rh "github.com/rhq/rh"

// Check endpoints: each cloud worker answers rh.api.check.<kind> with what
// it sees from where it runs — its region, credentials' source, role,
// API server — so `rhcli check` reports the worker's environment, not the
// CLI's. Any authenticated caller may ask: the answer names regions, roles
// and versions, never secrets.
const CheckPrefix = "rh.api.check"

// CheckSubject is the subject of the check endpoint of kind's worker.
func CheckSubject(kind rh.Kind) string { return CheckPrefix + "." + string(kind) }

// CheckRequest asks a worker whether it can launch clusters. The body may be
// empty.
type CheckRequest struct{}

// CheckItem is one readiness item.
type CheckItem struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"` // the command or setting that makes it ready
	// Optional items do not decide readiness: a cloud that is off while
	// another is on.
	Optional bool `json:"optional,omitempty"`
}

// CheckReply is a worker's answer.
type CheckReply struct {
	Kind   rh.Kind     `json:"kind"`
	Worker string      `json:"worker"` // the answering process's id
	Ready  bool        `json:"ready"`  // every item that is not optional is OK
	Items  []CheckItem `json:"items"`
}
