package api

import (
	"time"
)

// SSH gateway endpoints: rh.api.ssh.<op> (micro service rh-sshgateway).
//
// Commands and file transfers can outlast any request timeout, so neither is
// one long request:
//
//   - run is a streamed request on rh.stream.ssh.run: every message of the
//     answer goes to the request's own reply subject (the caller's inbox),
//     never to a subject the caller names. The first is a RunAccepted (or an
//     error); output, per-node exits, heartbeats and a final RunDone follow
//     as core-NATS messages; an empty message closes the stream. The client
//     acknowledges data messages on AckSubject; the gateway keeps at most
//     Window unacknowledged chunks in flight, so a slow reader slows the
//     command instead of overflowing NATS. A message on CancelSubject kills
//     the command's process group on every node. Only the run's own caller
//     may acknowledge or cancel it.
//   - walk and hashblocks answer in pages, streamed the same way on
//     rh.stream.ssh.fs.<op>.
//   - fs.* endpoints are one small request each; open and create return a
//     handle whose reads and writes go, chunk by chunk, to HandleSubject — a
//     subject of the gateway instance that holds the open file, so file
//     transfers work when several gateways share the queue group.
const (
	SSHService = "rh-sshgateway"
	SSHPrefix  = "rh.api.ssh"
	// SSHStreamPrefix holds the endpoints whose answer is several messages
	// (the users account imports rh.stream.> with streamed responses).
	SSHStreamPrefix = "rh.stream.ssh"

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

// SSHSubject is the subject of a gateway endpoint (run: SSHStreamSubject).
func SSHSubject(op string) string { return SSHPrefix + "." + op }

// SSHStreamSubject is the subject of a gateway endpoint answered by a stream
// of messages: run.
func SSHStreamSubject(op string) string { return SSHStreamPrefix + "." + op }

// FSSubject is the subject of a file system endpoint (walk and hashblocks:
// FSStreamSubject).
func FSSubject(op string) string { return SSHPrefix + ".fs." + op }

// FSStreamSubject is the subject of a file system endpoint answered in
// pages: walk and hashblocks.
func FSStreamSubject(op string) string { return SSHStreamPrefix + ".fs." + op }

// RunCancelSubject cancels a run. It is shared by all users, as a client
// may cancel before it learns its run's subjects; the gateway heeds only
// the run's own user.
func RunCancelSubject(runID string) string { return "rh.ssh.cancel." + runID }

// ControlPrefix prefixes the control subjects of the user whose nkey is
// owner: its runs' acks and input, its open files' operations. NATS lets
// each user publish under its own prefix only, so no one else can ack or
// feed a run, or touch an open file, even knowing its id.
func ControlPrefix(owner string) string { return "rh.ssh." + owner }

// RunAckSubject acknowledges a run's data messages: the body is the highest
// sequence number consumed, in decimal.
func RunAckSubject(owner, runID string) string { return ControlPrefix(owner) + ".ack." + runID }

// RunStdinSubject takes a run's standard input, from the user who started
// it: requests of at most MaxChunk bytes, each answered once the node has
// taken it (an error once the command reads no more); a request with the
// HdrEOF header ends the input.
func RunStdinSubject(owner, runID string) string { return ControlPrefix(owner) + ".stdin." + runID }

// RunRequest runs a shell command on a cluster's nodes.
type RunRequest struct {
	Name string `json:"name"`
	// Node is head (default), all, a 0-based index or a node's address.
	Node string `json:"node,omitempty"`
	// Command is a shell command line, run by the user's shell on the
	// node as `ssh node Command` would. Argv instead is one command's
	// words, each reaching it unchanged: the node agent execs them (inside
	// the same login environment), a plain session quotes each for the
	// shell. Exactly one of the two is set.
	Command string            `json:"command"`
	Argv    []string          `json:"argv,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	// TimeoutSeconds stops the command this long after it starts on a node
	// (logging in is not counted); 0 means no limit.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// RunID, when set (letters, digits, '-', '_'), names the run, so a client
	// can cancel it before the answer arrives.
	RunID string `json:"run_id,omitempty"`
	// Window overrides DefaultRunWindow.
	Window int `json:"window,omitempty"`
	// Stdin asks to send the command's standard input (RunAccepted's
	// StdinSubject). Input goes to one node: a run on several is refused.
	// Without it the command's stdin is empty.
	Stdin bool `json:"stdin,omitempty"`
}

// RunAccepted answers a run request before the command starts.
type RunAccepted struct {
	RunID         string   `json:"run_id"`
	Nodes         []string `json:"nodes"`
	CancelSubject string   `json:"cancel_subject"`
	AckSubject    string   `json:"ack_subject"`
	Window        int      `json:"window"`
	// StdinSubject, when the request asked for Stdin, takes the input.
	StdinSubject string `json:"stdin_subject,omitempty"`
}

// RunNodeResult is one node's outcome. ExitCode is -1 when the command could
// not run to completion; Error then says why.
type RunNodeResult struct {
	Node     string `json:"node"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// TimedOut says the run's TimeoutSeconds stopped the command (ExitCode
	// is then -1).
	TimedOut bool `json:"timed_out,omitempty"`
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
	// Agent asks which of the nodes run the agent (starting it where it is
	// not running yet), so a transfer can use hashblocks and patch there.
	Agent bool `json:"agent,omitempty"`
}

// NodesReply lists node labels, as run output and results name them.
type NodesReply struct {
	Nodes []string `json:"nodes"`
	// Agents, when asked for, says per node (same order) whether it runs the
	// agent: only those serve hashblocks and patch.
	Agents []bool `json:"agents,omitempty"`
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
	// ProxyCommandBy names the user whose cluster spec set ProxyCommand
	// (empty when rh's own worker reported it, as for SageMaker's SSM
	// command). The client runs it on its own machine, so a command set by
	// someone else needs the caller's consent.
	ProxyCommandBy string `json:"proxy_command_by,omitempty"`
	// Caller is the user the gateway answered, as the server identified it.
	Caller   string `json:"caller,omitempty"`
	JumpHost string `json:"jump_host,omitempty"`
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
	// BlockSize for hashblocks.
	BlockSize int `json:"block_size,omitempty"`
}

// FSEntryReply answers stat.
type FSEntryReply struct {
	Entry FSEntry `json:"entry"`
}

// FSWalkPage is one message of a walk's answer; every page but the last has
// the HdrMore header. An empty message after the last closes the stream.
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

// Node agent endpoints and file operations served only where the node runs
// the agent (see docs/agent-protocol.md).
const (
	// SSHOpStatus answers a cluster's live view, node by node (LiveReply).
	SSHOpStatus = "status"
	// SSHOpRestartAgent kills and restarts each node's agent (LiveReply).
	SSHOpRestartAgent = "restart-agent"

	// FSHashBlocks answers the SHA-256 of each block of a file, hashed on
	// the node, in pages like walk (FSSumsPage). Agent nodes only.
	FSHashBlocks = "hashblocks"
	// FSPatch opens a write handle that rebuilds a file from its current
	// version: the handle's byte stream is a 4-byte big-endian length, the
	// patch as JSON (filesync.Patch), then the literal blocks. Commit applies
	// it. Agent nodes only.
	FSPatch = "patch"
	// FSWriteFiles writes a batch of small files, each whole with its mode
	// and mtime, in one request (FSWriteFilesRequest): a first copy of
	// many small files costs a request per batch instead of several per
	// file. Agent nodes write the batch in one round trip; others over SFTP.
	FSWriteFiles = "writefiles"
)

// FSWriteFilesRequest is the body of fs.writefiles. Every file's Path is
// relative to Path (an existing directory): clean, without "..", and its
// parents real directories, not symlinks. The node checks every entry before
// writing any: a batch with a bad entry is refused whole (Failed names it).
type FSWriteFilesRequest struct {
	Name  string   `json:"name"`
	Node  string   `json:"node,omitempty"`
	Path  string   `json:"path"`
	Files []FSFile `json:"files"`
}

// FSFile is one file of a batch. Data travels base64-encoded in JSON; its
// size is at most filesync.SmallFileMax.
type FSFile struct {
	Path  string    `json:"path"`
	Perm  uint32    `json:"perm"`
	MTime time.Time `json:"mtime"`
	Data  []byte    `json:"data"`
}

// FSWriteFilesReply answers fs.writefiles: the files written, in order from
// the first; Failed is the file that stopped the batch (an entry refused
// before anything was written, or the first one that failed to write).
type FSWriteFilesReply struct {
	Written int          `json:"written"`
	Failed  *FSFileError `json:"failed,omitempty"`
}

// FSFileError is the failure of one file of a batch.
type FSFileError struct {
	Index   int    `json:"index"`
	Path    string `json:"path"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Agent states of a node in NodeLive.
const (
	AgentRunning     = "running"     // commands and files go through the agent
	AgentUnavailable = "unavailable" // it cannot run there: plain SSH sessions
	AgentDisabled    = "disabled"    // the gateway is configured without agents
	AgentError       = "error"       // it should run but did not start (retried)
)

// FSBlockSum is filesync.BlockSum on the wire.
type FSBlockSum struct {
	Size int    `json:"size"`
	Sum  string `json:"sum"` // SHA-256, hex
}

// FSSumsPage is one message of a hashblocks answer; every page but the last
// has the HdrMore header.
type FSSumsPage struct {
	Sums []FSBlockSum `json:"sums"`
}

// LiveRequest names the cluster (and optionally a node selector, default all).
type LiveRequest struct {
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
}

// LiveReply is a cluster's live state, one entry per node in node order.
type LiveReply struct {
	Name  string     `json:"name"`
	Nodes []NodeLive `json:"nodes"`
}

// NodeLive is one node's live state as its agent reports it, or why there is
// no agent (Agent not "running": Message says why and what is used instead).
type NodeLive struct {
	Node           string    `json:"node"`
	Agent          string    `json:"agent"` // AgentRunning, AgentUnavailable, ...
	Message        string    `json:"message,omitempty"`
	AgentVersion   string    `json:"agent_version,omitempty"`
	AgentPID       int       `json:"agent_pid,omitempty"`
	UptimeSeconds  float64   `json:"uptime_seconds,omitempty"`
	CPUPercent     float64   `json:"cpu_percent"`
	LoadAverage    []float64 `json:"load_average,omitempty"`
	MemoryUsed     uint64    `json:"memory_used,omitempty"`
	MemoryTotal    uint64    `json:"memory_total,omitempty"`
	DiskPath       string    `json:"disk_path,omitempty"`
	DiskUsed       uint64    `json:"disk_used,omitempty"`
	DiskTotal      uint64    `json:"disk_total,omitempty"`
	GPUs           []GPULive `json:"gpus,omitempty"`
	Runs           []RunLive `json:"runs"`
	SampledAt      time.Time `json:"sampled_at,omitzero"`
	AgentRestarts  int       `json:"agent_restarts,omitempty"`
	AgentStartedAt time.Time `json:"agent_started_at,omitzero"`
}

// GPULive is one GPU's live use.
type GPULive struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	UtilPercent int    `json:"util_percent"`
	MemoryUsed  uint64 `json:"memory_used"`
	MemoryTotal uint64 `json:"memory_total"`
}

// RunLive is a command running on a node: started by `rhcli run` through
// the agent (PID set), or through a plain session (RunID set, no PID).
type RunLive struct {
	RunID   string    `json:"run_id,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}
