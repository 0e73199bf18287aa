// Package bench holds rh's side-by-side benchmarks against the OpenSSH tools
// a user would otherwise reach for: ssh (fresh and ControlMaster), pdsh and
// rsync, run in one `go test -bench` on the same local sshd nodes. Everything
// lives in the _test files; see README.md for how to run them and what each
// case measures.
package bench
