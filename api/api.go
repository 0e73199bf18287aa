// Package api is the request/reply contract of rh's services on NATS: the
// subjects of their micro endpoints and the JSON bodies they take and give.
// Any NATS client can call them; the Go SDK (package client) wraps them.
package api

import (
	"time"

	rh "github.com/rhq/rh"
)

// Registry endpoints: rh.api.registry.<op>.
const (
	RegistryService = "rh-registry"
	RegistryPrefix  = "rh.api.registry"

	OpCreate   = "create"
	OpGet      = "get"
	OpList     = "list"
	OpUp       = "up"
	OpTeardown = "teardown"
	OpDelete   = "delete"
	OpAutostop = "autostop"
	OpEvents   = "events"
	OpRefresh  = "refresh"
	OpShare    = "share"
	OpUnshare  = "unshare"
)

// RegistrySubject is the subject of a registry endpoint.
func RegistrySubject(op string) string { return RegistryPrefix + "." + op }

// CreateRequest creates a cluster. Secrets go to the secret store, never into
// the record or any event.
type CreateRequest struct {
	Name    string      `json:"name"`
	Spec    rh.Spec     `json:"spec"`
	Secrets *rh.Secrets `json:"secrets,omitempty"`
	// NoUp records and validates the cluster without launching it (phase
	// Defined); `up` launches it later.
	NoUp bool `json:"no_up,omitempty"`
	// RequestID names this create (the SDK sends a UUID): the same caller
	// sending it again, after an answer that never came, is answered with
	// the cluster the first one made instead of "already exists". At most
	// MaxRequestID characters of [A-Za-z0-9._:-]; optional.
	RequestID string `json:"request_id,omitempty"`
}

// MaxRequestID bounds CreateRequest.RequestID.
const MaxRequestID = 64

// NameRequest names the cluster an operation is about.
type NameRequest struct {
	Name string `json:"name"`
}

// DeleteRequest deletes a cluster's record and secrets.
type DeleteRequest struct {
	Name string `json:"name"`
	// Force deletes even when machines may still exist.
	Force bool `json:"force,omitempty"`
}

// AutostopRequest changes a cluster's autostop.
type AutostopRequest struct {
	Name    string `json:"name"`
	Minutes int    `json:"minutes"`
}

// ClusterReply carries one record.
type ClusterReply struct {
	Cluster *rh.Cluster `json:"cluster"`
}

// ListRequest asks for one page of records in name order.
type ListRequest struct {
	// After is the last name of the previous page; empty for the first.
	After string `json:"after,omitempty"`
	// Limit bounds the page (0 or more than MaxListPage: MaxListPage).
	Limit int `json:"limit,omitempty"`
}

// Page bounds of list: a page stays under NATS's default 1 MiB payload.
const (
	MaxListPage  = 5000
	MaxListBytes = 768 << 10
)

// ListReply carries one page of cluster summaries, sorted by name; Next,
// when set, is the After of the next page.
type ListReply struct {
	Clusters []rh.ClusterSummary `json:"clusters"`
	Next     string              `json:"next,omitempty"`
}

// EventsReply carries a cluster's history, oldest first.
type EventsReply struct {
	History []rh.Transition `json:"history"`
}

// ShareRequest grants User access to a cluster (Runhouse's share). Only the
// cluster's owner or an admin may share; sharing again changes the access.
type ShareRequest struct {
	Name   string    `json:"name"`
	User   string    `json:"user"`
	Access rh.Access `json:"access"`
}

// UnshareRequest takes a share away.
type UnshareRequest struct {
	Name string `json:"name"`
	User string `json:"user"`
}

// WatchSubject streams one cluster's record: a request with a NameRequest
// body on it is answered by many messages on its reply subject (rh.stream.>
// is exported with streamed responses). Each message is a WatchMessage.
const WatchSubject = "rh.stream.registry.watch"

// Watch stream bounds. The registry sends a heartbeat at least every
// WatchHeartbeat when nothing changes (NATS forgets a streamed response's
// route 2 minutes after its last message) and ends a stream after at most
// WatchMaxDuration; a client that hears nothing for WatchIdle asks again.
const (
	WatchHeartbeat   = 15 * time.Second
	WatchMaxDuration = 10 * time.Minute
	WatchIdle        = 3 * WatchHeartbeat
)

// WatchMessage is one message of a watch stream. It is never empty: an
// empty message would end the streamed response in NATS. An error (not
// found, forbidden) comes as a micro error reply instead, and ends the stream.
type WatchMessage struct {
	Type string `json:"type"`
	// Cluster and Revision are set on WatchTypeRecord: the record as of that
	// revision of the bucket (a client skips revisions it has seen).
	Cluster  *rh.Cluster `json:"cluster,omitempty"`
	Revision uint64      `json:"revision,omitempty"`
}

// Watch message types.
const (
	WatchTypeRecord    = "record"    // the current record, or a change
	WatchTypeHeartbeat = "heartbeat" // nothing changed; the stream is alive
	WatchTypeDeleted   = "deleted"   // the cluster is gone; the stream ends
	WatchTypeEnd       = "end"       // the stream ends; ask again to go on
)

// Users endpoints: rh.api.users.<op>, answered by the registry (the only
// writer of the users bucket); admins only.
const (
	UsersPrefix  = "rh.api.users"
	OpUserAdd    = "add"
	OpUserList   = "list"
	OpUserRemove = "remove"
)

// UsersSubject is the subject of a users endpoint.
func UsersSubject(op string) string { return UsersPrefix + "." + op }

// UserAddRequest creates a user.
type UserAddRequest struct {
	Name string  `json:"name"`
	Role rh.Role `json:"role"`
}

// UserAddReply carries the new user and its credentials file: the only
// copy of the key's seed, which rh never stores.
type UserAddReply struct {
	User  rh.User `json:"user"`
	Creds string  `json:"creds"`
}

// UsersReply lists users by name (public keys only).
type UsersReply struct {
	Users []rh.User `json:"users"`
}

// Micro error codes used by every rh service, one per rh error code.
var errorStatus = map[string]string{
	rh.EINVALID: "400", rh.ENOTFOUND: "404", rh.ECONFLICT: "409", rh.EFORBIDDEN: "403", rh.EUNAVAILABLE: "503", rh.EINTERNAL: "500",
}

// ErrorStatus maps an rh error code to the micro error code.
func ErrorStatus(code string) string {
	if s, ok := errorStatus[code]; ok {
		return s
	}
	return "500"
}
