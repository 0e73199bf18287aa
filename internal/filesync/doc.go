// Package filesync copies files and directory trees between file systems the
// way rsync does: only what changed moves.
//
// One engine, Sync, runs over any pair of FS implementations: LocalFS (the
// local OS), SFTPFS (a node reached over SFTP), and file systems defined
// elsewhere (the gateway's NATS-backed FS, the node agent). The FS interface
// is coarse on purpose — Walk lists a whole tree per call, with filter rules
// as plain data — so a remote implementation that can walk on the far side
// costs one round trip per sync, not one per file. Optional capabilities
// (Hasher, Patcher, TimePrecision) let a far side that can read its own files
// take part in content comparison and block-delta transfers; where they are
// missing the engine falls back to whole-file copies.
//
// See Sync for the source/destination path rules, and ParseFilter for the
// filter rule syntax (rsync's common forms plus .gitignore files).
package filesync
