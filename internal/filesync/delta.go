package filesync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// copyBufSize is the per-transfer buffer; memory use of a sync is bounded by
// Options.Parallel times this, whatever the file sizes.
const copyBufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// ErrChanged reports that a file changed while it was being transferred, so
// the copy could not be verified. Syncing again picks up the new version.
var ErrChanged = errors.New("file changed during transfer")

// maxBlocks is the number of blocks BlockSizeFor aims at for large files.
// Per block, a delta costs a sum on the wire both ways (about 100 bytes of
// JSON) and a reused-or-literal decision; per changed byte it costs up to a
// block of slack. 8192 blocks keep a 1 GiB file's sums under 1 MiB while a
// 1 MiB change still sends at most 1 MiB plus one 128 KiB block.
const maxBlocks = 8192

// BlockSizeFor returns the delta block size used for a file of the given
// size: the power of two that splits it into at most maxBlocks blocks,
// clamped to [64 KiB, 8 MiB]. (rsync uses the square root of the size; for
// the files where deltas matter, hundreds of MiB and up, that makes tens of
// thousands of blocks whose sums cost more than the slack they save.)
func BlockSizeFor(size int64) int {
	const lo, hi = 64 << 10, 8 << 20
	want := (size + maxBlocks - 1) / maxBlocks
	bs := int64(lo)
	for bs < want && bs < hi {
		bs <<= 1
	}
	return int(bs)
}

// HashBlocksReader computes the block sums of everything r yields. File
// systems implementing Hasher on the node use it; the engine uses it to
// compare content (Options.Checksum) on file systems that cannot hash.
func HashBlocksReader(ctx context.Context, r io.Reader, blockSize int) ([]BlockSum, error) {
	if blockSize <= 0 {
		return nil, fmt.Errorf("filesync: block size %d", blockSize)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	h := sha256.New()
	var sums []BlockSum
	n := 0 // bytes in the current block
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		want := min(len(buf), blockSize-n)
		m, err := io.ReadFull(r, buf[:want])
		h.Write(buf[:m])
		n += m
		if n == blockSize || (n > 0 && err != nil) {
			var s BlockSum
			s.Size = n
			h.Sum(s.Sum[:0])
			sums = append(sums, s)
			h.Reset()
			n = 0
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return sums, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ApplyPatch writes the file p describes to w, taking reused blocks from old
// (the current version) and literal blocks from data, and verifying every
// block against p.Sums. File systems implementing Patcher call it between
// Create and Commit.
func ApplyPatch(ctx context.Context, w io.Writer, old io.ReaderAt, p Patch, data io.Reader) error {
	if p.BlockSize <= 0 {
		return fmt.Errorf("filesync: patch block size %d", p.BlockSize)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := sha256.New()
	hw := io.MultiWriter(w, h)
	lit := p.Literal
	for i, s := range p.Sums {
		if err := ctx.Err(); err != nil {
			return err
		}
		var src io.Reader
		if len(lit) > 0 && lit[0] == i {
			lit = lit[1:]
			src = data
		} else {
			src = io.NewSectionReader(old, int64(i)*int64(p.BlockSize), int64(s.Size))
		}
		h.Reset()
		n, err := io.CopyBuffer(hw, io.LimitReader(src, int64(s.Size)), *bp)
		if err != nil {
			return fmt.Errorf("filesync: block %d: %w", i, err)
		}
		if n != int64(s.Size) || Sum(h.Sum(nil)) != s.Sum {
			return fmt.Errorf("filesync: block %d does not match its checksum: %w", i, ErrChanged)
		}
	}
	if len(lit) > 0 {
		return fmt.Errorf("filesync: patch lists literal block %d beyond the file's %d blocks", lit[0], len(p.Sums))
	}
	return nil
}

// validatePatch checks what an in-place patch relies on before the file is
// touched: block i lives at i*BlockSize, so every block but the last must be
// full, and literal indexes must be in range and increasing.
func validatePatch(p Patch) error {
	if p.BlockSize <= 0 {
		return fmt.Errorf("filesync: patch block size %d", p.BlockSize)
	}
	for i, s := range p.Sums {
		if s.Size <= 0 || s.Size > p.BlockSize || (s.Size != p.BlockSize && i != len(p.Sums)-1) {
			return fmt.Errorf("filesync: patch block %d has size %d with block size %d", i, s.Size, p.BlockSize)
		}
	}
	prev := -1
	for _, i := range p.Literal {
		if i <= prev || i >= len(p.Sums) {
			return fmt.Errorf("filesync: patch literal block %d out of order or beyond the file's %d blocks", i, len(p.Sums))
		}
		prev = i
	}
	return nil
}

// sentinelTime is the modification time an in-place patch gives a file it
// leaves incomplete: the Unix epoch, or two days later if the source's own
// time is near it. Any time differing from the source's at every precision
// the engine compares at (a second at most) would do; an obviously bogus one
// also tells a human the file was left half patched.
func sentinelTime(src time.Time) time.Time {
	t := time.Unix(0, 0)
	if d := src.Sub(t); d > -24*time.Hour && d < 24*time.Hour {
		t = t.Add(48 * time.Hour)
	}
	return t
}

// patchInPlace applies p to f, the destination file opened for writing, as
// Patch.InPlace describes. Reused blocks are neither read nor written; each
// literal block is written at its offset and verified against its sum as it
// is written.
//
// Until the content is complete and on disk, the file must not look up to
// date to a size+mtime comparison, even after a power loss. The mtime alone
// cannot promise that: every write sets it to the current time, which a
// source modified during the patch could share. So the file is first marked
// with a size the new version does not have (one byte more) and the sentinel
// mtime, and both are synced before the first block lands; the real size is
// set, and synced, only after the last block. The caller sets the source's
// mtime once this returns. A failure puts the sentinel mtime back (best
// effort: the size already tells).
func patchInPlace(ctx context.Context, f *os.File, p Patch, data io.Reader) (err error) {
	if err := validatePatch(p); err != nil {
		return err
	}
	var size int64
	for _, s := range p.Sums {
		size += int64(s.Size)
	}
	sentinel := sentinelTime(p.ModTime)
	defer func() {
		if err != nil {
			_ = os.Chtimes(f.Name(), sentinel, sentinel)
		}
	}()
	if err := f.Truncate(size + 1); err != nil {
		return err
	}
	if err := os.Chtimes(f.Name(), sentinel, sentinel); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := sha256.New()
	for _, i := range p.Literal {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := p.Sums[i]
		h.Reset()
		w := io.MultiWriter(io.NewOffsetWriter(f, int64(i)*int64(p.BlockSize)), h)
		n, err := io.CopyBuffer(w, io.LimitReader(data, int64(s.Size)), *bp)
		if err != nil {
			return fmt.Errorf("filesync: block %d: %w", i, err)
		}
		if n != int64(s.Size) || Sum(h.Sum(nil)) != s.Sum {
			return fmt.Errorf("filesync: block %d does not match its checksum: %w", i, ErrChanged)
		}
	}
	// The blocks must be on disk before the size says the file is whole.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Chmod(p.Perm)
}

// literalReader yields the content of the listed blocks of a source file,
// concatenated. With an io.ReaderAt it reads only those blocks; otherwise it
// reads the stream sequentially and discards the others.
type literalReader struct {
	r         io.Reader
	ra        io.ReaderAt
	blockSize int64
	sums      []BlockSum
	blocks    []int
	pos       int64 // sequential position in r
	cur       io.Reader
}

func newLiteralReader(r io.Reader, blockSize int, sums []BlockSum, blocks []int) *literalReader {
	lr := &literalReader{r: r, blockSize: int64(blockSize), sums: sums, blocks: blocks}
	lr.ra, _ = r.(io.ReaderAt)
	return lr
}

func (lr *literalReader) Read(p []byte) (int, error) {
	for {
		if lr.cur != nil {
			n, err := lr.cur.Read(p)
			if errors.Is(err, io.EOF) {
				lr.cur, err = nil, nil
				if n == 0 {
					continue
				}
			}
			return n, err
		}
		if len(lr.blocks) == 0 {
			return 0, io.EOF
		}
		i := lr.blocks[0]
		lr.blocks = lr.blocks[1:]
		off, size := int64(i)*lr.blockSize, int64(lr.sums[i].Size)
		if lr.ra != nil {
			lr.cur = io.NewSectionReader(lr.ra, off, size)
			continue
		}
		if off < lr.pos {
			return 0, fmt.Errorf("filesync: literal blocks out of order")
		}
		if _, err := io.CopyN(io.Discard, lr.r, off-lr.pos); err != nil {
			return 0, err
		}
		lr.pos = off + size
		lr.cur = io.LimitReader(lr.r, size)
	}
}

// ctxReader makes long copies notice cancellation between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ctxWriter makes long copies notice cancellation between writes.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// copyStream copies r to w with bounded memory, letting either side use its
// own fast path (sftp files read and write with concurrent requests).
func copyStream(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(ctxReader{ctx, r})
	}
	if wt, ok := r.(io.WriterTo); ok {
		return wt.WriteTo(ctxWriter{ctx, w})
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(ctxWriter{ctx, w}, ctxReader{ctx, r}, *bp)
}
