package api

import rh "github.com/rhq/rh"

// WatchListSubject streams the summaries of every cluster the caller may
// read (`rhcli cluster list --watch`): the list first, in pages, then one
// message per change. The request body is empty or {}. Bounds and
// heartbeats are a record watch's (WatchHeartbeat, WatchMaxDuration).
const WatchListSubject = "rh.stream.registry.watchlist"

// WatchListMessage is one message of a list watch stream; never empty.
type WatchListMessage struct {
	Type string `json:"type"`
	// Clusters holds a page of the list (WatchListPage) or the one cluster
	// that changed (WatchListChange).
	Clusters []rh.ClusterSummary `json:"clusters,omitempty"`
	// Name is the cluster that left the list (WatchListRemoved): deleted,
	// or no longer readable by the caller.
	Name string `json:"name,omitempty"`
}

// List watch message types. Heartbeat and end are a record watch's.
const (
	WatchListPage    = "page"    // part of the current list
	WatchListSynced  = "synced"  // the whole list was sent; changes follow
	WatchListChange  = "change"  // a cluster was added or changed
	WatchListRemoved = "removed" // a cluster left the list
)

// WhoamiReply says who the server takes the caller for, and where that
// caller publishes intake requests and reads their outcomes.
type WhoamiReply struct {
	User string  `json:"user"`
	Role rh.Role `json:"role"`
	// Key is the caller's NATS public key, empty for rh's own services.
	Key            string `json:"key,omitempty"`
	IntakeSubject  string `json:"intake_subject,omitempty"`
	OutcomeSubject string `json:"outcome_subject,omitempty"`
}

// OpWhoami is the registry endpoint that answers WhoamiReply.
const OpWhoami = "whoami"
