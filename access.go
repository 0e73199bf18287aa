package rh

import (
	"fmt"

	"github.com/rhq/rh/internal/lazyre"
)

// Role is what a user may do across rh.
type Role string

// Roles: an admin does everything to every cluster; a member creates clusters
// and acts on those it owns or that were shared with it; a viewer reads
// clusters and events but never runs, connects or changes anything.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleMember || r == RoleViewer }

// Access is what a share grants on one cluster.
type Access string

// Access levels: read shows the record, its events and its status; write
// also runs commands, moves files, connects (the key), trusts host keys and
// changes the cluster's life.
const (
	AccessRead  Access = "read"
	AccessWrite Access = "write"
)

// Valid reports whether a is a known access level.
func (a Access) Valid() bool { return a == AccessRead || a == AccessWrite }

// Covers reports whether having a is enough for need.
func (a Access) Covers(need Access) bool {
	return a == AccessWrite || (a == AccessRead && need == AccessRead)
}

var userNameRE = lazyre.New(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ValidateUserName checks an rh user name: lowercase letters, digits, '.',
// '_' and '-', 1–63 characters, starting and ending with a letter or digit.
func ValidateUserName(field, name string) error {
	if !userNameRE.MatchString(name) {
		return Invalid(field, "%q is not a user name: use 1-63 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// User is one person (or system acting for people) allowed on the bus.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Key is the user's NATS nkey (public half); the seed is only in the
	// user's credentials file.
	Key       string `json:"key"`
	CreatedBy string `json:"created_by,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
}

// Caller is who sent a request, as the NATS server stamped it: never taken
// from a request body.
type Caller struct {
	// User is the rh user name; for rh's own services it is "service:<name>".
	User string `json:"user"`
	Role Role   `json:"role"`
	// Service marks a request from rh's own services account.
	Service bool `json:"service,omitempty"`
	// Key is the user's nkey as the server stamped it (auth's
	// InsecurePublisher with authentication off, empty for services): the
	// token of the subjects only this user may publish to.
	Key string `json:"-"`
}

// Operator is the caller every request is attributed to when authentication
// is off (an --insecure-nats deployment, or a test's bare NATS).
var Operator = Caller{User: "operator", Role: RoleAdmin}

// Admin reports whether the caller may do anything to any cluster.
func (c Caller) Admin() bool { return c.Service || c.Role == RoleAdmin }

// Can reports whether the caller has at least need on cluster cl.
func (c Caller) Can(cl *Cluster, need Access) bool {
	if c.Admin() {
		return true
	}
	if c.Role == RoleViewer {
		return need == AccessRead
	}
	if cl.Owner != "" && cl.Owner == c.User {
		return true
	}
	if a, ok := cl.Shares[c.User]; ok {
		return a.Covers(need)
	}
	return false
}

// Check returns a forbidden error naming the caller, the cluster and the
// access it lacks, or nil when the caller has it.
func (c Caller) Check(cl *Cluster, need Access) error {
	if c.Can(cl, need) {
		return nil
	}
	return Forbidden("user %q has no %s access to cluster %q", c.User, need, cl.Name)
}

// CanCreate reports whether the caller may create clusters.
func (c Caller) CanCreate() error {
	if c.Role == RoleViewer && !c.Service {
		return Forbidden("user %q is a viewer: viewers cannot create clusters", c.User)
	}
	return nil
}

func (c Caller) String() string {
	if c.Service {
		return c.User
	}
	return fmt.Sprintf("%s (%s)", c.User, c.Role)
}
