package filesync

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Entry describes one file system object. Walk returns entries whose Path is
// slash-separated and relative to the walked root; Stat returns an entry whose
// Path is the path it was asked about.
type Entry struct {
	Path       string
	Mode       fs.FileMode // type bits and permissions, as io/fs defines them
	Size       int64       // bytes, for regular files
	ModTime    time.Time
	LinkTarget string // for symlinks: the target, verbatim (never resolved)
}

// IsDir, IsRegular and IsSymlink report the entry's type.
func (e Entry) IsDir() bool     { return e.Mode.IsDir() }
func (e Entry) IsRegular() bool { return e.Mode.IsRegular() }
func (e Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }

// Side says which end of a transfer a walk serves. Some filter rules apply to
// one side only: "hide"/"show" rules restrict what the sender offers, "protect"/
// "risk" rules restrict what the receiver may delete.
type Side int

const (
	// Sender walks list what may be copied.
	Sender Side = iota
	// Receiver walks list what may be compared against and deleted.
	Receiver
)

// WalkOptions controls a Walk. It is plain data so that a remote FS can ship
// it to the far side and filter there (an excluded node_modules is then never
// listed over the network); such a far side can apply it by calling
// LocalFS.Walk, which is the reference implementation.
type WalkOptions struct {
	// Rules are filter rules in the syntax ParseRule accepts, in order; the
	// first rule matching a path decides. Excluded directories are not
	// descended into.
	Rules []string
	// Side selects which side-specific rules apply.
	Side Side
}

// FS is the file system the sync engine reads from or writes to: the local OS,
// an SFTP server, or a node agent. Paths are slash-separated; relative paths are
// resolved by the implementation (the process working directory for LocalFS,
// the login directory for SFTP). Errors for missing paths must satisfy
// errors.Is(err, fs.ErrNotExist).
//
// The interface is deliberately coarse: one Walk lists a whole tree, so an
// implementation whose far side can walk itself costs one round trip per sync
// instead of one per directory.
type FS interface {
	// Stat describes path without following a final symlink (lstat). A trailing
	// slash on path, as in "link/", follows it on POSIX systems.
	Stat(ctx context.Context, path string) (Entry, error)
	// Walk lists everything below root (root itself excluded), parents before
	// their children, siblings in byte order of name. Symlinks are listed, not
	// followed. Filtered-out directories are neither listed nor descended.
	Walk(ctx context.Context, root string, opts WalkOptions) ([]Entry, error)
	// Open opens a regular file for streaming reads. If the returned reader also
	// implements io.ReaderAt, delta transfers read only the blocks they need.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// Create starts writing a new version of the file at path with permission
	// bits perm. Content goes to a temporary file in the same directory that
	// Commit renames over path, so readers never see a half-written file and a
	// failed transfer leaves the old version intact.
	Create(ctx context.Context, path string, perm fs.FileMode) (FileWriter, error)
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(ctx context.Context, path string, perm fs.FileMode) error
	// Remove removes a file, a symlink or an empty directory.
	Remove(ctx context.Context, path string) error
	// Symlink creates a symlink at path pointing at target.
	Symlink(ctx context.Context, target, path string) error
	// Chmod sets permission bits (following symlinks).
	Chmod(ctx context.Context, path string, perm fs.FileMode) error
	// Chtimes sets the modification time (following symlinks); the access time
	// may be set to the same value.
	Chtimes(ctx context.Context, path string, mtime time.Time) error
}

// FileWriter receives the content of a file being created by FS.Create.
// Exactly one of Commit or Abort must be called; after Commit, Abort is a no-op,
// so `defer w.Abort()` is the idiomatic guard.
type FileWriter interface {
	io.Writer
	// Commit flushes the content and atomically replaces the destination.
	Commit() error
	// Abort discards the temporary file.
	Abort() error
}

// TimePrecision is implemented by file systems that store modification times
// more coarsely than a nanosecond (SFTP stores whole seconds). The engine
// compares mtimes at the coarser precision of the two sides, so a tree synced to
// such a file system is not re-sent on every run.
type TimePrecision interface {
	MtimePrecision() time.Duration
}

// Sum is a SHA-256 digest. It marshals as lowercase hex so BlockSum lists stay
// compact in JSON messages.
type Sum [32]byte

// MarshalText implements encoding.TextMarshaler.
func (s Sum) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(s[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Sum) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(s) {
		return fmt.Errorf("filesync: sum must be %d hex digits, got %d", 2*len(s), len(b))
	}
	_, err := hex.Decode(s[:], b)
	return err
}

// String returns the sum in hex.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// BlockSum is the strong hash of one fixed-size block of a file. Block i
// starts at offset i*blockSize; only the last block may be shorter.
type BlockSum struct {
	Size int `json:"size"`
	Sum  Sum `json:"sum"`
}

// Hasher is an optional FS capability: hashing files where they live, so that
// comparing contents costs a list of sums on the wire instead of the files. The
// node agent implements it; SFTP cannot.
type Hasher interface {
	// HashBlocks returns the SHA-256 of each blockSize block of path, in order.
	// An empty file has no blocks.
	HashBlocks(ctx context.Context, path string, blockSize int) ([]BlockSum, error)
}

// Patch describes a new version of a file in terms of its current version:
// block i of the new file is either copied from block i of the current file
// (same offset, same content) or read from the literal data stream.
//
// It travels as JSON (the node agent's fs.patch); the fields added later
// (InPlace, ModTime) are optional, so an older receiver ignores them and
// takes the safe path, which yields the same content.
type Patch struct {
	BlockSize int
	// Sums are the SHA-256 sums of every block of the new file. The receiver
	// verifies every block it writes against them, so a source that changed
	// during the transfer fails with ErrChanged instead of being silently
	// copied half old, half new. A rebuild (the safe path) writes, and so
	// verifies, every block; an in-place patch writes only the literal ones.
	Sums []BlockSum
	// Literal lists, in increasing order, the indexes of blocks whose content
	// comes from the data stream; every other block is reused.
	Literal []int
	// Perm is the permission bits of the new file.
	Perm fs.FileMode
	// InPlace allows the receiver to write the literal blocks into the
	// current file at their offsets and truncate it to the new size, instead
	// of rebuilding the whole file in a temporary one and renaming it over
	// (as rsync --inplace does). The sender asks for it when few blocks
	// changed in a large file, where a rebuild would read and write
	// gigabytes to change megabytes. It gives up atomicity: readers may see
	// the file half patched, and a patch that fails or is interrupted leaves
	// mixed content. Such a file must never look up to date to a later sync:
	// before its first write the receiver durably gives it a size other than
	// the new one and a sentinel modification time (see ModTime), and sets
	// the real size only once every block is on disk; the sender sets the
	// source's mtime only after Patch succeeded. The next sync then sees a
	// difference and repairs the file. A receiver may ignore InPlace (LocalFS
	// does for a file with several hard links, or one it cannot open for
	// writing).
	InPlace bool `json:",omitempty"`
	// ModTime is the source's modification time, which the sender sets on
	// the file once Patch has succeeded. An in-place patch uses it to choose
	// a sentinel time that cannot be mistaken for it.
	ModTime time.Time `json:",omitzero"`
}

// Patcher is an optional FS capability: rebuilding a file from its current
// version plus changed blocks, on the side where it lives. Delta transfers are
// used when the source is a Hasher and the destination is a Hasher and a
// Patcher.
type Patcher interface {
	// Patch replaces path with the file p describes: atomically as Create
	// does, or, if p.InPlace and the receiver supports it, by writing the
	// changed blocks into the file (see Patch.InPlace). data yields the
	// literal blocks' content, concatenated in order.
	Patch(ctx context.Context, path string, p Patch, data io.Reader) error
}
