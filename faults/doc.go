// Package faults is rh's fault suite (issue 10): a real three-node NATS
// cluster of nats-server processes, every service its own `rhcli serve`
// process with --replicas 3, and scenarios that kill processes with SIGKILL
// and check what a user sees through rhcli.
//
// The tests carry the build tag "faults" so `go test ./...` does not run
// them (they take minutes on a small machine); `make faults` does:
//
//	go test -tags faults -count=1 -timeout 30m ./faults
package faults
