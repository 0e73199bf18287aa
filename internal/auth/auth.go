// Package auth decides who is calling rh and what the bus lets each party do.
//
// rh's NATS has two accounts: RH, where the services live (and JetStream with
// them), and RH_USERS, where people and the systems acting for them live.
// Users reach the services only through service imports that share client
// info, so the server stamps every request with the caller's account and nkey
// (the Nats-Request-Info header); handlers take identity from that header and
// never from a request body. Users are nkey users; their names and roles are
// kept in the RH account's KV bucket rh_users, which every service mirrors.
package auth

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	rh "github.com/rhq/rh"
)

// Account names.
const (
	ServicesAccount = "RH"
	UsersAccount    = "RH_USERS"
)

// RequestInfoHeader is the header the NATS server sets on requests that cross
// a service import with shared client info.
const RequestInfoHeader = "Nats-Request-Info"

// requestInfo is the part of the server's ClientInfo rh reads.
type requestInfo struct {
	Account string `json:"acc"`
	User    string `json:"user"`
}

type callerKey struct{}

// WithCaller returns ctx carrying the caller of the request being handled.
func WithCaller(ctx context.Context, c rh.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller WithCaller stored. A context without one is
// not a request's: it gets no rights at all.
func CallerFrom(ctx context.Context) rh.Caller {
	if c, ok := ctx.Value(callerKey{}).(rh.Caller); ok {
		return c
	}
	return rh.Caller{User: "nobody", Role: rh.RoleViewer}
}

// Authenticator turns a request's server-set headers into a caller.
// The zero value is not usable: use Insecure or NewAuthenticator.
type Authenticator struct {
	insecure bool
	users    *Directory
}

// Insecure returns an authenticator for a NATS without rh's accounts
// (--insecure-nats, and tests on a bare server): every caller is the
// operator. Never the default of `rhcli serve`.
func Insecure() *Authenticator { return &Authenticator{insecure: true} }

// NewAuthenticator resolves callers through the users directory.
func NewAuthenticator(users *Directory) *Authenticator { return &Authenticator{users: users} }

// Insecure reports whether every caller is treated as the operator.
func (a *Authenticator) Insecure() bool { return a == nil || a.insecure }

// Caller returns who sent a message with headers h. A request from inside
// the services account (no client info: it never crossed an import) is a
// service of rh. A user unknown to the directory (never added, or removed)
// is refused.
func (a *Authenticator) Caller(h nats.Header) (rh.Caller, error) {
	if a.Insecure() {
		c := rh.Operator
		c.Key = InsecurePublisher
		return c, nil
	}
	raw := h.Get(RequestInfoHeader)
	if raw == "" {
		return rh.Caller{User: "service", Role: rh.RoleAdmin, Service: true}, nil
	}
	var ri requestInfo
	if err := json.Unmarshal([]byte(raw), &ri); err != nil {
		return rh.Caller{}, rh.Forbidden("request carries unreadable caller information")
	}
	if ri.Account != UsersAccount {
		return rh.Caller{}, rh.Forbidden("requests from account %q are not accepted", ri.Account)
	}
	u, ok := a.users.ByKey(ri.User)
	if !ok {
		return rh.Caller{}, rh.Forbidden("unknown or removed user (key %s): ask an admin for credentials", shortKey(ri.User))
	}
	return rh.Caller{User: u.Name, Role: u.Role, Key: ri.User}, nil
}

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12] + "…"
	}
	return k
}

// Errorf wraps with the package prefix.
func errorf(format string, args ...any) error { return fmt.Errorf("auth: "+format, args...) }

// Role returns the role of the user named name, as the directory has it now.
// With an insecure authenticator every name is the operator's, an admin.
func (a *Authenticator) Role(name string) (rh.Role, bool) {
	if a.Insecure() {
		return rh.RoleAdmin, true
	}
	u, ok := a.users.ByName(name)
	if !ok {
		return "", false
	}
	return u.Role, true
}
