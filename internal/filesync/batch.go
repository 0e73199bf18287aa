package filesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"
)

// Small files are sent in batches: a first copy of a tree of thousands of
// small files would otherwise cost several round trips per file (create,
// write, commit, chtimes), each crossing the network, while the content is a
// few KiB. A batch carries many whole files, their modes and mtimes, in one
// request.
const (
	// SmallFileMax is the largest file sent in a batch; larger files (and
	// changed files a delta transfer may serve better) go one by one.
	SmallFileMax = 64 << 10
	// BatchMaxBytes bounds the content of one batch.
	BatchMaxBytes = 1 << 20
	// BatchMaxFiles bounds the files of one batch.
	BatchMaxFiles = 1000
)

// SmallFile is one file of a batch: its whole content and attributes.
type SmallFile struct {
	// Path is relative to the batch's root: slash-separated, clean, without
	// "..", and every parent directory must exist as a real directory (not a
	// symlink) below the root.
	Path    string
	Perm    fs.FileMode
	ModTime time.Time
	Data    []byte
}

// Batcher is an optional FS capability: writing many small files, content,
// permissions and modification time, in one request. The node agent and the
// gateway implement it, so a first put of many small files costs a round trip
// per batch instead of several per file.
type Batcher interface {
	// WriteFiles writes files below root, in order, each atomically as
	// Create and Commit do, then sets its mtime. Every path is checked
	// before anything is written (see CheckBatch): a batch with a bad entry
	// is refused whole, with a *BatchError naming the entry, and writes
	// nothing. It returns how many files, from the first, were written: on
	// a *BatchError for a file that failed while writing, those before it.
	// At most BatchMaxFiles files are sent per call.
	WriteFiles(ctx context.Context, root string, files []SmallFile) (int, error)
	// BatchMaxBytes is the most content one call may carry (the
	// transport's limit); the engine also keeps to the package's
	// BatchMaxBytes.
	BatchMaxBytes() int
}

// BatchError is the failure of one file of a batch.
type BatchError struct {
	Index int    // in the batch
	Path  string // as given, relative to the root
	Err   error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("filesync: batch entry %q: %v", e.Path, e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// CheckBatch refuses a batch whose entries would write outside root: a path
// that is not clean and relative (ErrEscape), or one whose parent below root
// is a symlink or not a directory (ErrEscape), checked on fsys. The error is
// a *BatchError naming the first bad entry.
func CheckBatch(ctx context.Context, fsys FS, root string, files []SmallFile) error {
	parents := map[string]error{} // verdict per parent directory, relative
	var checkDir func(rel string) error
	checkDir = func(rel string) error {
		if rel == "." {
			return nil
		}
		if err, ok := parents[rel]; ok {
			return err
		}
		err := checkDir(path.Dir(rel))
		if err == nil {
			e, serr := fsys.Stat(ctx, path.Join(root, rel))
			switch {
			case serr != nil:
				err = fmt.Errorf("parent %q: %w", rel, serr)
			case e.IsSymlink():
				err = fmt.Errorf("%w: it passes through the symlink %q", ErrEscape, rel)
			case !e.IsDir():
				err = fmt.Errorf("%w: its parent %q is not a directory", ErrEscape, rel)
			}
		}
		parents[rel] = err
		return err
	}
	for i, f := range files {
		err := checkRel(f.Path)
		if err == nil {
			err = checkDir(path.Dir(f.Path))
		}
		if err == nil && (len(f.Data) > SmallFileMax || f.Perm&^fs.ModePerm&^(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0) {
			err = fmt.Errorf("not a small regular file (%d bytes, mode %v)", len(f.Data), f.Perm)
		}
		if err != nil {
			return &BatchError{Index: i, Path: f.Path, Err: err}
		}
	}
	return nil
}

// WriteFilesFS is WriteFiles for any FS: CheckBatch, then Create, Write,
// Commit and Chtimes for each file. LocalFS's batches (the node agent's) and
// SFTP's (the gateway's, for nodes without the agent) are this.
func WriteFilesFS(ctx context.Context, fsys FS, root string, files []SmallFile) (int, error) {
	if len(files) > BatchMaxFiles {
		return 0, fmt.Errorf("filesync: batch of %d files exceeds %d", len(files), BatchMaxFiles)
	}
	if err := CheckBatch(ctx, fsys, root, files); err != nil {
		return 0, err
	}
	for i, f := range files {
		if err := writeOne(ctx, fsys, path.Join(root, f.Path), f); err != nil {
			if ctx.Err() != nil {
				return i, ctx.Err()
			}
			return i, &BatchError{Index: i, Path: f.Path, Err: err}
		}
	}
	return len(files), nil
}

func writeOne(ctx context.Context, fsys FS, p string, f SmallFile) error {
	w, err := fsys.Create(ctx, p, f.Perm)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(f.Data); err != nil {
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	return fsys.Chtimes(ctx, p, f.ModTime)
}

// batchable says whether it goes in a batch: a small regular file that is
// new, or changed by the quick check (a delta of a file this small would
// cost more round trips than the file).
func (s *syncer) batchable(it item) bool {
	if it.src.Size > SmallFileMax || !it.src.IsRegular() {
		return false
	}
	if it.dst == nil {
		return true
	}
	return !s.opts.Checksum && it.dst.IsRegular() && (it.dst.Size != it.src.Size || !s.sameTime(it.dst.ModTime, it.src.ModTime))
}

// batches splits the small files of files (see batchable) into batches the
// destination takes, and returns the rest for one-by-one transfers.
func (s *syncer) batches(files []item, b Batcher) (batches [][]item, rest []item) {
	limit := min(b.BatchMaxBytes(), BatchMaxBytes)
	var cur []item
	size := 0
	for _, it := range files {
		if !s.batchable(it) {
			rest = append(rest, it)
			continue
		}
		if len(cur) > 0 && (size+int(it.src.Size) > limit || len(cur) == BatchMaxFiles) {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		cur = append(cur, it)
		size += int(it.src.Size)
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, rest
}

// sendBatch reads a batch's files from the source and writes them in one
// WriteFiles. A file that grew past SmallFileMax since the walk goes alone;
// a file the destination refused fails alone, and the rest are sent again.
func (s *syncer) sendBatch(b Batcher, root string, items []item) {
	files := make([]SmallFile, 0, len(items))
	kept := items[:0:0]
	for _, it := range items {
		data, err := s.readSmall(it)
		if errors.Is(err, errTooBig) {
			if err := s.syncFile(it); err != nil {
				s.fail(err)
			}
			continue
		}
		if err != nil {
			s.fail(err)
			continue
		}
		files = append(files, SmallFile{Path: it.rel, Perm: perm(it.src.Mode), ModTime: it.src.ModTime, Data: data})
		kept = append(kept, it)
	}
	for len(files) > 0 {
		n, err := b.WriteFiles(s.ctx, root, files)
		n = max(0, min(n, len(files)))
		for i, it := range kept[:n] {
			s.count(func(st *Stats) { st.FilesSent++; st.BytesSent += int64(len(files[i].Data)) })
			s.markDirty(it.rel)
			s.report(Change{Op: OpSend, Path: it.rel, Size: int64(len(files[i].Data))})
		}
		if err == nil {
			return
		}
		var be *BatchError
		if !errors.As(err, &be) || be.Index < n || be.Index >= len(files) || s.ctx.Err() != nil {
			for _, it := range kept[n:] {
				s.fail(pathErr("write", it.dstPath, err))
			}
			return
		}
		bad := kept[be.Index]
		s.fail(pathErr("write", bad.dstPath, be.Err))
		// Everything not written but the refused entry goes again.
		files = append(files[n:be.Index:be.Index], files[be.Index+1:]...)
		kept = append(kept[n:be.Index:be.Index], kept[be.Index+1:]...)
	}
}

var errTooBig = errors.New("file grew past the batch limit")

func (s *syncer) readSmall(it item) ([]byte, error) {
	r, err := s.src.Open(s.ctx, it.srcPath)
	if err != nil {
		return nil, pathErr("open", it.srcPath, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(ctxReader{s.ctx, r}, SmallFileMax+1))
	if err != nil {
		return nil, pathErr("read", it.srcPath, err)
	}
	if len(data) > SmallFileMax {
		return nil, errTooBig
	}
	return data, nil
}
