package filesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options control Sync. The zero value copies new and changed files, judged by
// size and modification time, and deletes nothing.
type Options struct {
	// Delete removes destination entries the source does not have. Excluded
	// destination entries are kept (they are not listed), as are directories
	// that still hold them. Nothing is deleted if any transfer failed.
	Delete bool
	// Checksum compares the content of files of equal size instead of trusting
	// equal size and modification time. Where both sides implement Hasher this
	// costs a list of sums on the wire; otherwise both files are read.
	Checksum bool
	// DryRun reports (Stats, OnChange) what would change and changes nothing.
	DryRun bool
	// Exclude holds gitignore-style patterns, as lines of one .gitignore file:
	// later patterns override earlier ones and "!pattern" re-includes.
	Exclude []string
	// Filter holds rsync-style filter rules (see ParseFilter's documentation),
	// checked before Exclude; e.g. "- *.o", "+ keep.o", "dir-merge,- .gitignore".
	Filter []string
	// GitIgnore honours .gitignore files found in the trees, as the rule
	// ":- .gitignore" after Filter and Exclude would.
	GitIgnore bool
	// WholeFile disables delta transfers, for when both sides are on the same
	// machine and reading the old copy costs more than it saves.
	WholeFile bool
	// BlockSize fixes the delta block size; zero picks BlockSizeFor(size).
	BlockSize int
	// Parallel bounds concurrent file transfers; zero means 8.
	Parallel int
	// OnChange, if set, is called (never concurrently) for each change made or,
	// in a dry run, planned.
	OnChange func(Change)
}

// Op is the kind of a Change.
type Op string

// Changes Sync reports.
const (
	OpSend    Op = "send"    // whole file sent
	OpDelta   Op = "delta"   // file rebuilt from changed blocks
	OpSymlink Op = "symlink" // symlink created or replaced
	OpMkdir   Op = "mkdir"   // directory created
	OpDelete  Op = "delete"  // extraneous entry removed
	OpReplace Op = "replace" // entry of another type removed to make room
	OpAttrs   Op = "attrs"   // only mode or modification time updated
)

// Change is one change Sync made or, in a dry run, would make. Path is
// slash-separated and relative to the destination root ("." for the root).
type Change struct {
	Op   Op
	Path string
	Size int64 // bytes sent, for OpSend and OpDelta
}

// Stats summarises a Sync. Counts include what a dry run would do.
type Stats struct {
	FilesSeen    int   // regular files and symlinks in the (filtered) source
	FilesSent    int   // regular files written, whole or by delta
	SymlinksSent int   // symlinks created or replaced
	DirsCreated  int   // destination directories created
	FilesDeleted int   // destination entries removed by Delete (any type)
	BytesSent    int64 // file content transferred: whole files, literal blocks
	BytesSkipped int64 // file content not transferred: unchanged files, reused blocks
}

// Sync makes dstPath on dst a copy of srcPath on src, moving only what changed.
//
// Path rule: the destination names the result, so running the same Sync twice
// is idempotent.
//   - A directory source (with or without a trailing slash) is mirrored at
//     dstPath: its contents become dstPath's contents, and dstPath is created
//     with its parents if missing. "put ./dir /remote/dir" yields /remote/dir/a
//     for ./dir/a, never /remote/dir/dir/a. (This differs from rsync, which
//     nests a source given without a trailing slash.) A dstPath that exists
//     and is not a directory is an error.
//   - A file or symlink source is written at dstPath, unless dstPath ends in
//     "/" or is an existing directory, in which case it goes inside it under
//     its base name. Missing parent directories are created. Filter rules do
//     not apply to a single-file source.
//   - A symlink is copied as a symlink, target verbatim, including as the
//     source root; "link/" (trailing slash) follows it where the FS's Stat does.
//
// Regular files are skipped when size and modification time match (at the
// coarser precision of the two sides) or, with Checksum, when contents match;
// a skipped file whose permissions differ gets them fixed. Modes (permission,
// setuid/setgid/sticky bits) and modification times of files and directories
// are kept; ownership, hard links, ACLs and xattrs are not; devices, fifos
// and sockets are skipped. Files are transferred concurrently; each one is
// written to a temporary file and renamed into place, except that a large
// file of which little changed may be patched in place (see Patch.InPlace
// and the package documentation). A per-file failure does
// not stop the others: Sync returns all of them joined, with the Stats of what
// was done.
func Sync(ctx context.Context, src FS, srcPath string, dst FS, dstPath string, opts Options) (Stats, error) {
	if srcPath == "" || dstPath == "" {
		return Stats{}, errors.New("filesync: empty source or destination path")
	}
	rules := opts.rules()
	if _, err := ParseFilter(rules); err != nil {
		return Stats{}, err
	}
	root, err := src.Stat(ctx, srcPath)
	if err != nil {
		return Stats{}, pathErr("source", srcPath, err)
	}
	s := &syncer{
		ctx:   ctx,
		src:   src,
		dst:   dst,
		opts:  opts,
		prec:  max(precision(src), precision(dst)),
		dirty: map[string]bool{},
	}
	if s.opts.Parallel <= 0 {
		s.opts.Parallel = 8
	}
	if root.IsDir() {
		err = s.syncTree(srcPath, root, cleanPath(dstPath), rules)
	} else {
		err = s.syncSingle(srcPath, root, dstPath)
	}
	if err == nil {
		err = s.err()
	}
	return s.stats, err
}

// rules merges Filter, Exclude and GitIgnore into one first-match-wins list.
func (o Options) rules() []string {
	rules := slices.Clone(o.Filter)
	for _, p := range slices.Backward(o.Exclude) {
		p = trimGitSpaces(strings.TrimRight(p, "\r\n"))
		if p == "" || p[0] == '#' {
			continue
		}
		kind := "- "
		if p[0] == '!' {
			kind, p = "+ ", p[1:]
		}
		// gitignore anchors patterns with an inner slash; rsync rules need a
		// leading slash for that.
		if strings.Contains(strings.TrimRight(p, "/"), "/") && !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if p != "" {
			rules = append(rules, kind+p)
		}
	}
	if o.GitIgnore {
		rules = append(rules, ":- .gitignore")
	}
	return rules
}

type syncer struct {
	ctx      context.Context
	src, dst FS
	opts     Options
	prec     time.Duration

	mu    sync.Mutex // guards the fields below
	stats Stats
	errs  []error
	dirty map[string]bool // relative dirs whose content changed
}

// item is one source entry and what the destination holds at its place.
type item struct {
	rel     string
	src     Entry
	dst     *Entry // nil if missing
	srcPath string
	dstPath string
	// writable records that a read-only destination directory was made
	// owner-writable for the transfer; fixDir restores its mode.
	writable bool
}

func (s *syncer) syncTree(srcRoot string, root Entry, dstRoot string, rules []string) error {
	srcEntries, err := s.src.Walk(s.ctx, srcRoot, WalkOptions{Rules: rules, Side: Sender})
	if err != nil {
		return fmt.Errorf("filesync: walk source %s: %w", srcRoot, err)
	}
	var dstEntries []Entry
	dstTop, err := s.dst.Stat(s.ctx, dstRoot)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dstTop = Entry{}
	case err != nil:
		return pathErr("destination", dstRoot, err)
	case !dstTop.IsDir():
		return fmt.Errorf("filesync: destination %s exists and is not a directory", dstRoot)
	default:
		dstEntries, err = s.dst.Walk(s.ctx, dstRoot, WalkOptions{Rules: rules, Side: Receiver})
		if err != nil {
			return fmt.Errorf("filesync: walk destination %s: %w", dstRoot, err)
		}
	}
	dstIdx := make(map[string]int, len(dstEntries))
	for i, e := range dstEntries {
		dstIdx[e.Path] = i
	}
	srcSet := make(map[string]bool, len(srcEntries))
	removed := map[string]bool{}
	conf := newConfinement(srcEntries, dstEntries)

	// Directories and symlinks first, in order, so files have somewhere to go.
	var dirs, files []item
	rootItem := item{rel: ".", src: root, srcPath: srcRoot, dstPath: dstRoot}
	if dstTop.Mode != 0 {
		rootItem.dst = &dstTop
		s.makeWritable(&rootItem)
	} else {
		if err := s.mkdir(rootItem); err != nil {
			return err
		}
	}
	dirs = append(dirs, rootItem)
	for _, e := range srcEntries {
		if err := conf.check(e.Path); err != nil {
			s.fail(fmt.Errorf("filesync: refusing entry %q of %s: %w", e.Path, srcRoot, err))
			continue
		}
		srcSet[e.Path] = true
		it := item{rel: e.Path, src: e, srcPath: path.Join(srcRoot, e.Path), dstPath: path.Join(dstRoot, e.Path)}
		if i, ok := dstIdx[e.Path]; ok && !removed[e.Path] {
			it.dst = &dstEntries[i]
		}
		if it.dst != nil && it.dst.Mode.Type() != e.Mode.Type() {
			if err := s.removeTree(dstEntries, dstIdx, it.dst, dstRoot, removed); err != nil {
				s.fail(err)
				continue
			}
			it.dst = nil
		}
		switch {
		case e.IsDir():
			if it.dst == nil {
				if err := s.mkdir(it); err != nil {
					return err
				}
			} else {
				s.makeWritable(&it)
			}
			dirs = append(dirs, it)
		case e.IsSymlink():
			s.count(func(st *Stats) { st.FilesSeen++ })
			s.syncSymlink(it)
		case e.IsRegular():
			s.count(func(st *Stats) { st.FilesSeen++ })
			files = append(files, it)
		}
	}

	s.runFiles(files, dstRoot)

	if s.opts.Delete && s.err() == nil {
		for _, e := range slices.Backward(dstEntries) {
			if srcSet[e.Path] || removed[e.Path] || checkRel(e.Path) != nil {
				continue
			}
			s.remove(e, path.Join(dstRoot, e.Path), OpDelete)
		}
	}

	// Directory modes and times last, deepest first: writing into a directory
	// changes its mtime, and a read-only directory could not be filled.
	if !s.opts.DryRun {
		for _, d := range slices.Backward(dirs) {
			s.fixDir(d)
		}
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return nil
}

func (s *syncer) syncSingle(srcPath string, e Entry, dstPath string) error {
	if !e.IsRegular() && !e.IsSymlink() {
		return fmt.Errorf("filesync: source %s: unsupported file type %v", srcPath, e.Mode.Type())
	}
	target := cleanPath(dstPath)
	base := path.Base(cleanPath(srcPath))
	if strings.HasSuffix(dstPath, "/") {
		target = path.Join(target, base)
	} else if d, err := s.dst.Stat(s.ctx, target); err == nil && d.IsDir() {
		target = path.Join(target, base)
	}
	it := item{rel: path.Base(target), src: e, srcPath: srcPath, dstPath: target}
	d, err := s.dst.Stat(s.ctx, target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !s.opts.DryRun {
			if err := s.dst.MkdirAll(s.ctx, path.Dir(target), 0o755); err != nil {
				return pathErr("mkdir", path.Dir(target), err)
			}
		}
	case err != nil:
		return pathErr("destination", target, err)
	case d.IsDir():
		return fmt.Errorf("filesync: destination %s is a directory", target)
	case d.Mode.Type() != e.Mode.Type():
		s.remove(d, target, OpReplace)
	default:
		it.dst = &d
	}
	s.stats.FilesSeen = 1
	if e.IsSymlink() {
		s.syncSymlink(it)
		return nil
	}
	s.runFiles([]item{it}, "")
	return nil
}

// runFiles transfers files with at most opts.Parallel transfers in flight.
// Where the destination is a Batcher, small files below root (the tree's
// destination; "" for none) go in batches, each one transfer.
func (s *syncer) runFiles(files []item, root string) {
	var jobs []func()
	if b, ok := s.dst.(Batcher); ok && root != "" && !s.opts.DryRun {
		var batches [][]item
		batches, files = s.batches(files, b)
		for _, batch := range batches {
			jobs = append(jobs, func() { s.sendBatch(b, root, batch) })
		}
	}
	for _, it := range files {
		jobs = append(jobs, func() {
			if err := s.syncFile(it); err != nil {
				s.fail(err)
			}
		})
	}
	sem := make(chan struct{}, s.opts.Parallel)
	var wg sync.WaitGroup
	for _, job := range jobs {
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			job()
		})
	}
	wg.Wait()
}

func (s *syncer) syncFile(it item) error {
	e, d := it.src, it.dst
	if d != nil && d.Size == e.Size {
		if !s.opts.Checksum && s.sameTime(d.ModTime, e.ModTime) {
			s.count(func(st *Stats) { st.BytesSkipped += e.Size })
			return s.fixAttrs(it, false)
		}
		if s.opts.Checksum {
			same, err := s.sameContent(it)
			if err != nil {
				return err
			}
			if same {
				s.count(func(st *Stats) { st.BytesSkipped += e.Size })
				return s.fixAttrs(it, !s.sameTime(d.ModTime, e.ModTime))
			}
		}
	}
	if s.opts.DryRun {
		s.count(func(st *Stats) { st.FilesSent++; st.BytesSent += e.Size })
		s.report(Change{Op: OpSend, Path: it.rel, Size: e.Size})
		return nil
	}
	srcH, dstH, dstP, ok := s.deltaCapable()
	if ok && d != nil && d.Size > 0 && e.Size > 0 {
		return s.deltaFile(it, srcH, dstH, dstP)
	}
	return s.wholeFile(it)
}

func (s *syncer) wholeFile(it item) error {
	r, err := s.src.Open(s.ctx, it.srcPath)
	if err != nil {
		return pathErr("open", it.srcPath, err)
	}
	defer r.Close()
	w, err := s.dst.Create(s.ctx, it.dstPath, perm(it.src.Mode))
	if err != nil {
		return pathErr("create", it.dstPath, err)
	}
	defer w.Abort()
	n, err := copyStream(s.ctx, w, r)
	if err != nil {
		return fmt.Errorf("filesync: copy %s to %s: %w", it.srcPath, it.dstPath, err)
	}
	if err := w.Commit(); err != nil {
		return pathErr("write", it.dstPath, err)
	}
	if err := s.dst.Chtimes(s.ctx, it.dstPath, it.src.ModTime); err != nil {
		return pathErr("chtimes", it.dstPath, err)
	}
	s.count(func(st *Stats) { st.FilesSent++; st.BytesSent += n })
	s.markDirty(it.rel)
	s.report(Change{Op: OpSend, Path: it.rel, Size: n})
	return nil
}

func (s *syncer) deltaCapable() (Hasher, Hasher, Patcher, bool) {
	if s.opts.WholeFile {
		return nil, nil, nil, false
	}
	srcH, ok1 := s.src.(Hasher)
	dstH, ok2 := s.dst.(Hasher)
	dstP, ok3 := s.dst.(Patcher)
	return srcH, dstH, dstP, ok1 && ok2 && ok3
}

func (s *syncer) blockSize(size int64) int {
	if s.opts.BlockSize > 0 {
		return s.opts.BlockSize
	}
	return BlockSizeFor(size)
}

// In-place patching (Patch.InPlace) is asked for when a rebuild would cost
// far more than the change: the file is at least inPlaceMinSize and fewer
// than 1/inPlaceMaxFraction of its blocks changed. Below that the atomic
// rebuild is cheap enough to keep. (A variable so tests can use small files.)
var inPlaceMinSize int64 = 64 << 20

const inPlaceMaxFraction = 4

// deltaFile sends only the blocks that differ from the destination's current
// version. Both sides hash at the same time. When little of a large file
// changed, the destination patches it in place (see Patch.InPlace) and the
// mtime is set only once the patch has succeeded, so an interrupted patch
// never looks up to date; otherwise it rebuilds the file and renames it over.
func (s *syncer) deltaFile(it item, srcH, dstH Hasher, dstP Patcher) error {
	bs := s.blockSize(it.src.Size)
	srcSums, dstSums, err := s.hashPair(
		func(ctx context.Context) ([]BlockSum, error) { return srcH.HashBlocks(ctx, it.srcPath, bs) },
		func(ctx context.Context) ([]BlockSum, error) { return dstH.HashBlocks(ctx, it.dstPath, bs) },
		it)
	if err != nil {
		return err
	}
	var literal []int
	var litBytes int64
	for i, sum := range srcSums {
		if i >= len(dstSums) || dstSums[i] != sum {
			literal = append(literal, i)
			litBytes += int64(sum.Size)
		}
	}
	var total int64
	for _, sum := range srcSums {
		total += int64(sum.Size)
	}
	if len(literal) == 0 && len(srcSums) == len(dstSums) {
		// Same content, different mtime: only attributes change.
		s.count(func(st *Stats) { st.BytesSkipped += total })
		return s.fixAttrs(it, true)
	}
	r, err := s.src.Open(s.ctx, it.srcPath)
	if err != nil {
		return pathErr("open", it.srcPath, err)
	}
	defer r.Close()
	p := Patch{
		BlockSize: bs,
		Sums:      srcSums,
		Literal:   literal,
		Perm:      perm(it.src.Mode),
		InPlace:   total >= inPlaceMinSize && len(literal)*inPlaceMaxFraction < len(srcSums),
		ModTime:   it.src.ModTime,
	}
	if err := dstP.Patch(s.ctx, it.dstPath, p, ctxReader{s.ctx, newLiteralReader(r, bs, srcSums, literal)}); err != nil {
		return pathErr("patch", it.dstPath, err)
	}
	if err := s.dst.Chtimes(s.ctx, it.dstPath, it.src.ModTime); err != nil {
		return pathErr("chtimes", it.dstPath, err)
	}
	s.count(func(st *Stats) { st.FilesSent++; st.BytesSent += litBytes; st.BytesSkipped += total - litBytes })
	s.markDirty(it.rel)
	s.report(Change{Op: OpDelta, Path: it.rel, Size: litBytes})
	return nil
}

// hashPair runs the source's and the destination's hashing of it at the same
// time: they read different disks (or machines), so a delta costs the slower
// of the two instead of their sum. The first failure cancels the other.
func (s *syncer) hashPair(srcFn, dstFn func(context.Context) ([]BlockSum, error), it item) (src, dst []BlockSum, err error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var dstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if dst, dstErr = dstFn(ctx); dstErr != nil {
			cancel()
		}
	})
	src, err = srcFn(ctx)
	if err != nil {
		cancel()
	}
	wg.Wait()
	if err != nil && dstErr != nil && errors.Is(err, context.Canceled) && s.ctx.Err() == nil {
		err = nil // cancelled by the destination's failure: report that one
	}
	if err != nil {
		return nil, nil, pathErr("hash", it.srcPath, err)
	}
	if dstErr != nil {
		return nil, nil, pathErr("hash", it.dstPath, dstErr)
	}
	return src, dst, nil
}

// sameContent compares the contents of two files of equal size, hashing on
// each side (where it can) at the same time.
func (s *syncer) sameContent(it item) (bool, error) {
	bs := s.blockSize(it.src.Size)
	a, b, err := s.hashPair(
		func(ctx context.Context) ([]BlockSum, error) { return s.hash(ctx, s.src, it.srcPath, bs) },
		func(ctx context.Context) ([]BlockSum, error) { return s.hash(ctx, s.dst, it.dstPath, bs) },
		it)
	if err != nil {
		return false, err
	}
	return slices.Equal(a, b), nil
}

// hash returns the block sums of p on fsys, hashed where the file lives if
// fsys is a Hasher, read and hashed here otherwise. Errors are not wrapped:
// hashPair names the path.
func (s *syncer) hash(ctx context.Context, fsys FS, p string, bs int) ([]BlockSum, error) {
	if h, ok := fsys.(Hasher); ok {
		return h.HashBlocks(ctx, p, bs)
	}
	r, err := fsys.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return HashBlocksReader(ctx, r, bs)
}

// fixAttrs brings the mode (and, if setTime, the mtime) of an up-to-date
// destination file in line with the source.
func (s *syncer) fixAttrs(it item, setTime bool) error {
	chmod := it.dst != nil && perm(it.dst.Mode) != perm(it.src.Mode)
	if !chmod && !setTime {
		return nil
	}
	s.report(Change{Op: OpAttrs, Path: it.rel})
	if s.opts.DryRun {
		return nil
	}
	if chmod {
		if err := s.dst.Chmod(s.ctx, it.dstPath, perm(it.src.Mode)); err != nil {
			return pathErr("chmod", it.dstPath, err)
		}
	}
	if setTime {
		if err := s.dst.Chtimes(s.ctx, it.dstPath, it.src.ModTime); err != nil {
			return pathErr("chtimes", it.dstPath, err)
		}
	}
	return nil
}

func (s *syncer) syncSymlink(it item) {
	if it.dst != nil {
		if it.dst.LinkTarget == it.src.LinkTarget {
			return
		}
		if !s.opts.DryRun {
			if err := s.dst.Remove(s.ctx, it.dstPath); err != nil {
				s.fail(pathErr("remove", it.dstPath, err))
				return
			}
		}
	}
	if !s.opts.DryRun {
		if err := s.dst.Symlink(s.ctx, it.src.LinkTarget, it.dstPath); err != nil {
			s.fail(pathErr("symlink", it.dstPath, err))
			return
		}
	}
	s.count(func(st *Stats) { st.SymlinksSent++ })
	s.markDirty(it.rel)
	s.report(Change{Op: OpSymlink, Path: it.rel})
}

// mkdir creates a directory owner-writable, so it can be filled even when the
// source's is read-only; fixDir sets the real mode at the end.
func (s *syncer) mkdir(it item) error {
	s.count(func(st *Stats) { st.DirsCreated++ })
	s.markDirty(it.rel)
	s.report(Change{Op: OpMkdir, Path: it.rel})
	if s.opts.DryRun {
		return nil
	}
	if err := s.dst.MkdirAll(s.ctx, it.dstPath, perm(it.src.Mode)|0o700); err != nil {
		return pathErr("mkdir", it.dstPath, err)
	}
	return nil
}

// makeWritable lets the transfer write into an existing read-only directory.
func (s *syncer) makeWritable(it *item) {
	if s.opts.DryRun || it.dst.Mode.Perm()&0o200 != 0 {
		return
	}
	if err := s.dst.Chmod(s.ctx, it.dstPath, perm(it.dst.Mode)|0o700); err != nil {
		s.fail(pathErr("chmod", it.dstPath, err))
		return
	}
	it.writable = true
}

func (s *syncer) fixDir(it item) {
	created := it.dst == nil
	s.mu.Lock()
	dirty := s.dirty[it.rel]
	s.mu.Unlock()
	if created || it.writable || perm(it.dst.Mode) != perm(it.src.Mode) {
		if err := s.dst.Chmod(s.ctx, it.dstPath, perm(it.src.Mode)); err != nil {
			s.fail(pathErr("chmod", it.dstPath, err))
		}
	}
	if created || dirty || !s.sameTime(it.dst.ModTime, it.src.ModTime) {
		if err := s.dst.Chtimes(s.ctx, it.dstPath, it.src.ModTime); err != nil {
			s.fail(pathErr("chtimes", it.dstPath, err))
		}
	}
}

// removeTree removes a destination entry, and everything listed below it if it
// is a directory, to make room for a source entry of another type.
func (s *syncer) removeTree(dstEntries []Entry, dstIdx map[string]int, d *Entry, dstRoot string, removed map[string]bool) error {
	i := dstIdx[d.Path]
	end := i + 1
	if d.IsDir() {
		for end < len(dstEntries) && strings.HasPrefix(dstEntries[end].Path, d.Path+"/") {
			end++
		}
	}
	for j := end - 1; j >= i; j-- {
		e := dstEntries[j]
		op := OpReplace
		if j > i {
			op = OpDelete
		}
		if err := s.remove(e, path.Join(dstRoot, e.Path), op); err != nil {
			return err
		}
		removed[e.Path] = true
	}
	return nil
}

// remove deletes one destination entry. A directory that cannot be removed
// because it still holds excluded entries is kept without an error.
func (s *syncer) remove(e Entry, p string, op Op) error {
	if !s.opts.DryRun {
		if err := s.dst.Remove(s.ctx, p); err != nil {
			if e.IsDir() && op == OpDelete && !errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			err = pathErr("remove", p, err)
			s.fail(err)
			return err
		}
	}
	if op == OpDelete {
		s.count(func(st *Stats) { st.FilesDeleted++ })
	}
	s.markDirty(e.Path)
	s.report(Change{Op: op, Path: e.Path})
	return nil
}

func (s *syncer) sameTime(a, b time.Time) bool {
	return a.Truncate(s.prec).Equal(b.Truncate(s.prec))
}

func (s *syncer) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *syncer) report(c Change) {
	if s.opts.OnChange == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.OnChange(c)
}

// markDirty records that the directory holding rel changed.
func (s *syncer) markDirty(rel string) {
	dir := path.Dir(rel)
	s.mu.Lock()
	s.dirty[dir] = true
	s.mu.Unlock()
}

func (s *syncer) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

// maxReportedErrors bounds the joined error of a sync that failed for many files.
const maxReportedErrors = 20

func (s *syncer) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if len(s.errs) <= maxReportedErrors {
		return errors.Join(s.errs...)
	}
	errs := append(slices.Clone(s.errs[:maxReportedErrors]),
		fmt.Errorf("filesync: and %d more errors", len(s.errs)-maxReportedErrors))
	return errors.Join(errs...)
}

// perm keeps the mode bits a sync preserves.
func perm(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func precision(fsys FS) time.Duration {
	if p, ok := fsys.(TimePrecision); ok {
		return p.MtimePrecision()
	}
	return 0
}

// cleanPath cleans p but keeps "/" as is.
func cleanPath(p string) string { return path.Clean(p) }

// pathErr wraps err with an operation and path, never naming the path a
// second time: an *fs.PathError layer is dropped, and a remote file
// system's answer that reads "op path: reason" already keeps it.
func pathErr(op, p string, err error) error {
	if pe, ok := err.(*fs.PathError); ok && (pe.Path == p || pe.Path == osPath(p)) {
		err = pe.Err
	}
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, op+" "+p+": "):
		return fmt.Errorf("filesync: %w", err)
	case strings.Contains(msg, " "+p+": "):
		return fmt.Errorf("filesync: %s: %w", op, err)
	}
	return fmt.Errorf("filesync: %s %s: %w", op, p, err)
}

// ErrEscape is what refused entries match: a path that would put something
// outside the destination (absolute, with "..", or through a symlink).
var ErrEscape = errors.New("it would escape the destination")

// confinement keeps a tree's entries inside the destination. The source's
// listing comes from the other side (for a get, the node), which may be
// hostile: it could list "../../.bashrc", or a symlink "lnk" pointing
// anywhere followed by "lnk/authorized_keys", which would be written
// through the link. So every entry must be a clean relative path whose
// every parent is, once synced, a real directory of the destination: not a
// symlink the source sends or the destination already has, nor a file.
type confinement struct {
	links   map[string]bool // paths that are symlinks in the destination after the sync
	nonDirs map[string]bool // paths that are files after the sync
}

func newConfinement(src, dst []Entry) *confinement {
	c := &confinement{links: map[string]bool{}, nonDirs: map[string]bool{}}
	for _, e := range dst {
		if e.IsSymlink() {
			c.links[e.Path] = true
		}
	}
	for _, e := range src {
		// The source's type replaces the destination's (removeTree).
		delete(c.links, e.Path)
		switch {
		case e.IsSymlink():
			c.links[e.Path] = true
		case !e.IsDir():
			c.nonDirs[e.Path] = true
		}
	}
	return c
}

// check says why rel may not be written, or nil.
func (c *confinement) check(rel string) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		parent := rel[:i]
		if c.links[parent] {
			return fmt.Errorf("%w: it passes through the symlink %q inside the destination", ErrEscape, parent)
		}
		if c.nonDirs[parent] {
			return fmt.Errorf("%w: its parent %q is not a directory", ErrEscape, parent)
		}
	}
	return nil
}

// checkRel refuses paths that are not clean, relative and inside their root.
func checkRel(rel string) error {
	switch {
	case rel == "" || rel == ".":
		return fmt.Errorf("%w: empty path", ErrEscape)
	case strings.IndexByte(rel, 0) >= 0:
		return fmt.Errorf("%w: the path contains a NUL byte", ErrEscape)
	case path.IsAbs(rel) || filepath.IsAbs(filepath.FromSlash(rel)) || filepath.VolumeName(filepath.FromSlash(rel)) != "":
		return fmt.Errorf("%w: the path is absolute", ErrEscape)
	case filepath.Separator != '/' && strings.ContainsRune(rel, filepath.Separator):
		return fmt.Errorf("%w: the path contains %q", ErrEscape, filepath.Separator)
	}
	if slices.Contains(strings.Split(rel, "/"), "..") {
		return fmt.Errorf("%w: the path contains \"..\"", ErrEscape)
	}
	if path.Clean(rel) != rel {
		return fmt.Errorf("%w: the path is not in clean form", ErrEscape)
	}
	return nil
}
