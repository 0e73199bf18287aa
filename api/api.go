// Package api is the request/reply contract of rh's services on NATS: the
// subjects of their micro endpoints and the JSON bodies they take and give.
// Any NATS client can call them; the Go SDK (package client) wraps them.
package api

import (
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
)

// RegistrySubject is the subject of a registry endpoint.
func RegistrySubject(op string) string { return RegistryPrefix + "." + op }

// CreateRequest creates a cluster. Secrets go to the secret store, never into
// the record or any event.
type CreateRequest struct {
	Name    string      `json:"name"`
	Spec    rh.Spec     `json:"spec"`
	Secrets *rh.Secrets `json:"secrets,omitempty"`
}

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
