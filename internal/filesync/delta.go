package filesync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// copyBufSize is the per-transfer buffer; memory use of a sync is bounded by
// Options.Parallel times this, whatever the file sizes.
const copyBufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// ErrChanged reports that a file changed while it was being transferred, so
// the copy could not be verified. Syncing again picks up the new version.
var ErrChanged = errors.New("file changed during transfer")

// BlockSizeFor returns the delta block size used for a file of the given
// size: about the square root of the size (as rsync does), so the sum list
// and the expected retransmission grow slowly, clamped to [64 KiB, 8 MiB].
func BlockSizeFor(size int64) int {
	const lo, hi = 64 << 10, 8 << 20
	bs := int(math.Sqrt(float64(size)))
	bs = (bs + 4095) &^ 4095
	return min(max(bs, lo), hi)
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
