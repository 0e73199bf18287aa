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
// A delta transfer hashes both copies at the same time, each where it lives,
// and sends the blocks whose sums differ. Normally the destination then
// rebuilds the file in a temporary one (reading the blocks it keeps) and
// renames it over, so the update is atomic. When little of a large file
// changed (under a quarter of its blocks, file of 64 MiB or more), it instead
// writes only the changed blocks into the file at their offsets and cuts or
// extends it to the new size, like rsync --inplace: a 1 MiB change to a GiB
// file writes 1 MiB, not a GiB. The cost is atomicity. Readers may see the
// file half patched, and a crash or error mid-patch leaves mixed content.
// That state is never taken for up to date, even after a power loss: before
// its first write the patch makes the file one byte longer than its new size
// and sets a sentinel modification time (the Unix epoch), and syncs both to
// disk; the real size is set only once every block was written, verified and
// synced, and the source's mtime after that. So the next sync sees a size or
// mtime that differs, compares block sums and rewrites what differs. Only the
// blocks written are verified against the source's sums, as they are written
// (a source changed mid-transfer fails with ErrChanged); kept blocks are
// trusted from the hashing moments before. Files with several hard links, or
// that cannot be opened for writing, are always rebuilt.
//
// Where the destination is a Batcher (the node agent, the gateway), small files
// (new, or changed by the quick check; at most SmallFileMax) travel in batches
// of up to BatchMaxBytes, content, mode and mtime in one request, so a first
// copy of thousands of small files costs a round trip per batch instead of
// several per file. The receiving side checks a whole batch before writing
// any of it (CheckBatch).
//
// See Sync for the source/destination path rules, and ParseFilter for the
// filter rule syntax (rsync's common forms plus .gitignore files).
package filesync
