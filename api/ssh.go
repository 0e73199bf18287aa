package api

import (
	"time"
)

// SSH gateway endpoints: rh.api.ssh.<op> (micro service rh-sshgateway).
//
// Commands and file transfers can outlast any request timeout, so neither is
// one long request:
//
//   - run answers at once with a RunAccepted; output, per-node exits and a
//     final RunDone travel as core-NATS messages on the stream subject the
//     client chose (normally an inbox it subscribed to before asking). The
//     client acknowledges data messages on AckSubject; the gateway keeps at
//     most Window unacknowledged chunks in flight, so a slow reader slows the
//     command instead of overflowing NATS. A message on CancelSubject kills
//     the command's process group on every node.
//   - fs.* endpoints are one small request each; open and create return a
//     handle whose reads and writes go, chunk by chunk, to HandleSubject — a
//     subject of the gateway instance that holds the open file, so file
//     transfers work when several gateways share the queue group.
const (
	SSHService = "rh-sshgateway"
	SSHPrefix  = "rh.api.ssh"

	SSHOpRun     = "run"
	SSHOpTrust   = "trust"
	SSHOpConnect = "connect"
	SSHOpNodes   = "nodes"

	// File system operations, on rh.api.ssh.fs.<op>.
	FSStat    = "stat"
	FSWalk    = "walk"
	FSOpen    = "open"
	FSCreate  = "create"
	FSMkdir   = "mkdir"
	FSRemove  = "remove"
	FSSymlink = "symlink"
	FSChmod   = "chmod"
	FSChtimes = "chtimes"

	// Operations on an open handle, on <HandleSubject>.<op>. Their bodies are
	// raw bytes; the handle, offset and length travel in headers.
	FSRead   = "read"
	FSWrite  = "write"
	FSCommit = "commit"
	FSAbort  = "abort"
	FSClose  = "close"
)

// Node selectors.
const (
	NodeHead = "head"
	NodeAll  = "all"
)

// Limits of the streaming protocols.
const (
	// MaxChunk bounds the body of one output or file chunk.
	MaxChunk = 64 << 10
	// FileChunk is the size of file reads and writes through a handle.
	FileChunk = 256 << 10
	// DefaultRunWindow is how many unacknowledged output chunks the gateway
	// sends before it waits for the client.
	DefaultRunWindow = 256
)

// Headers of run stream messages and handle operations.
const (
	HdrEvent    = "Rh-Event" // run stream: data, exit, heartbeat, done
	HdrNode     = "Rh-Node"  // node label
	HdrNodeIdx  = "Rh-Node-Index"
	HdrStream   = "Rh-Stream" // stdout or stderr
	HdrSeq      = "Rh-Seq"    // data sequence of the run, from 1
	HdrExitCode = "Rh-Exit-Code"
	HdrError    = "Rh-Error"
	HdrHandle   = "Rh-Handle"
	HdrOffset   = "Rh-Offset"
	HdrLength   = "Rh-Length"
	HdrEOF      = "Rh-Eof"
	HdrMore     = "Rh-More" // walk pages: more follow
)

// Run stream events.
const (
	EventData      = "data"
	EventExit      = "exit"
	EventHeartbeat = "heartbeat"
	EventDone      = "done"
)

// SSHSubject is the subject of a gateway endpoint.
func SSHSubject(op string) string { return SSHPrefix + "." + op }

// FSSubject is the subject of a file system endpoint.
func FSSubject(op string) string { return SSHPrefix + ".fs." + op }

// RunCancelSubject cancels a run.
func RunCancelSubject(runID string) string { return "rh.ssh.cancel." + runID }

// RunAckSubject acknowledges a run's data messages: the body is the highest
// sequence number consumed, in decimal.
func RunAckSubject(runID string) string { return "rh.ssh.ack." + runID }

// RunRequest runs a shell command on a cluster's nodes.
type RunRequest struct {
	Name string `json:"name"`
	// Node is head (default), all, a 0-based index or a node's address.
	Node    string            `json:"node,omitempty"`
	Command string            `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	// TimeoutSeconds kills the command after this long; 0 means no limit.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Stream is the subject output is published to.
	Stream string `json:"stream"`
	// RunID, when set (letters, digits, '-', '_'), names the run, so a client
	// can cancel it before the answer arrives.
	RunID string `json:"run_id,omitempty"`
	// Window overrides DefaultRunWindow.
	Window int `json:"window,omitempty"`
}

// RunAccepted answers a run request before the command starts.
type RunAccepted struct {
	RunID         string   `json:"run_id"`
	Nodes         []string `json:"nodes"`
	CancelSubject string   `json:"cancel_subject"`
	AckSubject    string   `json:"ack_subject"`
	Window        int      `json:"window"`
}

// RunNodeResult is one node's outcome. ExitCode is -1 when the command could
// not run to completion; Error then says why.
type RunNodeResult struct {
	Node     string `json:"node"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// RunDone is the body of the last message of a run stream.
type RunDone struct {
	RunID   string          `json:"run_id"`
	Results []RunNodeResult `json:"results"`
}

// NodesRequest asks which nodes a selector picks.
type NodesRequest struct {
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
}

// NodesReply lists node labels, as run output and results name them.
type NodesReply struct {
	Nodes []string `json:"nodes"`
}

// TrustReply lists the host:port whose recorded host keys were forgotten.
type TrustReply struct {
	Forgotten []string `json:"forgotten"`
}

// ConnectRequest asks how to reach one node with an SSH client.
type ConnectRequest struct {
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
}

// ConnectReply tells an SSH client how to reach a node. It carries the
// cluster's private key: it is for the user's own ssh, never for display.
type ConnectReply struct {
	Node         string `json:"node"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	User         string `json:"user"`
	ProxyCommand string `json:"proxy_command,omitempty"`
	JumpHost     string `json:"jump_host,omitempty"`
	// PrivateKey is the stored key (PEM), if the cluster has one.
	PrivateKey string `json:"private_key,omitempty"`
	// HasPassword says a password is stored; ssh will prompt for it.
	HasPassword bool `json:"has_password,omitempty"`
	UseAgent    bool `json:"use_agent,omitempty"`
	// KnownHosts are known_hosts lines pinning the recorded host keys (the
	// node's, and the jump host's).
	KnownHosts            []string `json:"known_hosts,omitempty"`
	InsecureIgnoreHostKey bool     `json:"insecure_ignore_host_key,omitempty"`
}

// FSEntry is filesync.Entry on the wire.
type FSEntry struct {
	Path    string    `json:"path"`
	Mode    uint32    `json:"mode"` // io/fs.FileMode bits
	Size    int64     `json:"size,omitempty"`
	ModTime time.Time `json:"mtime"`
	Link    string    `json:"link,omitempty"`
}

// FSRequest is the body of every fs.* endpoint; each uses the fields it needs.
type FSRequest struct {
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
	Path string `json:"path"`
	// Perm for create, mkdir and chmod (io/fs.FileMode bits).
	Perm uint32 `json:"perm,omitempty"`
	// MTime for chtimes.
	MTime time.Time `json:"mtime,omitzero"`
	// Target of a symlink.
	Target string `json:"target,omitempty"`
	// Rules and Side for walk (filesync.WalkOptions).
	Rules []string `json:"rules,omitempty"`
	Side  int      `json:"side,omitempty"`
}

// FSEntryReply answers stat.
type FSEntryReply struct {
	Entry FSEntry `json:"entry"`
}

// FSWalkPage is one message of a walk's answer; every page but the last has
// the HdrMore header.
type FSWalkPage struct {
	Entries []FSEntry `json:"entries"`
}

// FSHandleReply answers open and create.
type FSHandleReply struct {
	Handle string `json:"handle"`
	// HandleSubject prefixes the handle's operations: <HandleSubject>.read.
	HandleSubject string `json:"handle_subject"`
	Size          int64  `json:"size,omitempty"`
}
