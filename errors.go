package rh

import (
	"errors"
	"fmt"
)

// Error codes shared by every layer. Each transport maps them to its own form:
// micro error codes on NATS, exit codes in rhcli, typed errors in the Go SDK.
const (
	EINVALID     = "invalid"     // the request breaks a rule; nothing changed
	ENOTFOUND    = "not_found"   // no such cluster
	ECONFLICT    = "conflict"    // exists already, or wrong phase for the operation
	EFORBIDDEN   = "forbidden"   // the caller may not do this to this cluster
	EUNAVAILABLE = "unavailable" // rh (NATS or a service) cannot be reached
	EINTERNAL    = "internal"    // anything else
)

// Sentinel errors for errors.Is. An *Error with the matching code is "equal" to them.
var (
	ErrInvalid     = &Error{Code: EINVALID, Message: "invalid input"}
	ErrNotFound    = &Error{Code: ENOTFOUND, Message: "not found"}
	ErrConflict    = &Error{Code: ECONFLICT, Message: "conflict"}
	ErrForbidden   = &Error{Code: EFORBIDDEN, Message: "forbidden"}
	ErrUnavailable = &Error{Code: EUNAVAILABLE, Message: "unavailable"}
	ErrInternal    = &Error{Code: EINTERNAL, Message: "internal error"}
)

// Error is an application error: a code callers can branch on, the field at fault
// (for invalid input) and a message a user can act on.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Err is the underlying cause; it never crosses the wire.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes every *Error match the sentinel of its code (and a target naming a
// field matches only errors about that field).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Field == "" || t.Field == e.Field)
}

// Invalid reports that field breaks rule. The message names both.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing cluster.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: ENOTFOUND, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports an operation that the current state refuses.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: ECONFLICT, Message: fmt.Sprintf(format, args...)}
}

// Forbidden reports that the caller lacks the access an operation needs.
func Forbidden(format string, args ...any) *Error {
	return &Error{Code: EFORBIDDEN, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the application code of err, EINTERNAL when it has none.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
