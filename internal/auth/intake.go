package auth

import (
	"strings"

	rh "github.com/rhq/rh"
)

// IntakeSubject is where the user with nkey key publishes intake requests.
// Its permissions allow this one intake subject, so the subject names the
// publisher as surely as the server's stamp would — and, unlike the stamp
// (Nats-Request-Info), which JetStream removes from the messages it stores,
// the subject survives the stream that keeps requests while no registry runs.
func IntakeSubject(key string) string { return "rh.intake." + key }

// InsecurePublisher is the key token of the local operator's intake and
// outcome subjects when authentication is off (no nkeys exist).
const InsecurePublisher = "operator"

// Publisher returns who published an intake message on subject, and the
// token (the publisher's nkey) that scopes its outcomes. A key the users
// directory does not know (never added, or removed) is refused. With
// authentication off every publisher is the operator.
func (a *Authenticator) Publisher(subject string) (rh.Caller, string, error) {
	key, ok := strings.CutPrefix(subject, "rh.intake.")
	if !ok || key == "" || strings.ContainsAny(key, ".*> \t") {
		return rh.Caller{}, "", rh.Forbidden("%q is not an intake subject (rh.intake.<your nkey>)", subject)
	}
	if a.Insecure() {
		return rh.Operator, key, nil
	}
	u, ok := a.users.ByKey(key)
	if !ok {
		return rh.Caller{}, "", rh.Forbidden("unknown or removed user (key %s) on %s", shortKey(key), subject)
	}
	return rh.Caller{User: u.Name, Role: u.Role}, key, nil
}
