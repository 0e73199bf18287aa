// Package agent is rh's node agent: the rh binary placed on each cluster node
// and run as `rhcli agent` inside ONE long-lived SSH session. A new OpenSSH
// session costs ~80 ms on the server; a request sent to a process already
// running there costs well under a millisecond. So the gateway installs the
// binary once per version (Install), starts it (Start), and then multiplexes
// runs, file system operations, facts and status queries over the session's
// stdin/stdout.
//
// The wire protocol (framing, handshake, streams, flow control, operations) is
// documented in docs/agent-protocol.md. In short: length-prefixed frames, a
// HELLO exchange carrying protocol versions, one stream per request, credit
// based flow control per stream and direction, JSON for control payloads and
// raw bytes for data.
//
// Serve is the agent side; Client is the gateway side. RemoteFS exposes the
// node's file system to internal/filesync, including the Hasher and Patcher
// capabilities, so syncs move only changed blocks.
package agent
