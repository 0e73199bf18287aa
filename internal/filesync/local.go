package filesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// LocalFS is the FS of the local operating system. Paths are slash-separated
// (converted with filepath.FromSlash); relative paths are relative to the
// process working directory. It also implements Hasher and Patcher, which is
// what the node agent serves to make delta transfers possible.
type LocalFS struct{}

var (
	_ FS      = LocalFS{}
	_ Hasher  = LocalFS{}
	_ Patcher = LocalFS{}
)

func osPath(p string) string { return filepath.FromSlash(p) }

// Stat implements FS.
func (LocalFS) Stat(ctx context.Context, p string) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	fi, err := os.Lstat(osPath(p))
	if err != nil {
		return Entry{}, err
	}
	e := entryFromInfo(p, fi)
	if e.IsSymlink() {
		if e.LinkTarget, err = os.Readlink(osPath(p)); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

// Walk implements FS.
func (l LocalFS) Walk(ctx context.Context, root string, opts WalkOptions) ([]Entry, error) {
	return walkTree(ctx, l, root, opts)
}

func (LocalFS) readDir(ctx context.Context, dir string) ([]Entry, error) {
	des, err := os.ReadDir(osPath(dir))
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(des))
	for _, de := range des {
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since listed
		}
		if err != nil {
			return nil, err
		}
		e := entryFromInfo(de.Name(), fi)
		if e.IsSymlink() {
			if e.LinkTarget, err = os.Readlink(filepath.Join(osPath(dir), de.Name())); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (LocalFS) readSmallFile(ctx context.Context, name string, max int64) ([]byte, error) {
	f, err := os.Open(osPath(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// Open implements FS; the *os.File it returns is an io.ReaderAt.
func (LocalFS) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.Open(osPath(p))
}

// Create implements FS.
func (LocalFS) Create(ctx context.Context, p string, perm fs.FileMode) (FileWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, base := path.Split(p)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(osPath(dir), tempPattern(base))
	if err != nil {
		return nil, err
	}
	return &localWriter{f: f, dst: osPath(p), perm: perm}, nil
}

// tempPattern names temporary files so they are hidden and recognisable.
func tempPattern(base string) string { return "." + base + ".rhtmp-*" }

type localWriter struct {
	f    *os.File
	dst  string
	perm fs.FileMode
	done bool
}

func (w *localWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *localWriter) Commit() error {
	if w.done {
		return errors.New("filesync: commit after commit or abort")
	}
	w.done = true
	err := w.f.Chmod(w.perm)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.dst)
	}
	if err != nil {
		os.Remove(w.f.Name())
	}
	return err
}

func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

// MkdirAll implements FS.
func (LocalFS) MkdirAll(ctx context.Context, p string, perm fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.MkdirAll(osPath(p), perm)
}

// Remove implements FS.
func (LocalFS) Remove(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Remove(osPath(p))
}

// Symlink implements FS.
func (LocalFS) Symlink(ctx context.Context, target, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Symlink(target, osPath(p))
}

// Chmod implements FS.
func (LocalFS) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Chmod(osPath(p), perm)
}

// Chtimes implements FS.
func (LocalFS) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Chtimes(osPath(p), mtime, mtime)
}

// HashBlocks implements Hasher.
func (LocalFS) HashBlocks(ctx context.Context, p string, blockSize int) ([]BlockSum, error) {
	f, err := os.Open(osPath(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return HashBlocksReader(ctx, f, blockSize)
}

// Patch implements Patcher. With p.InPlace it writes the changed blocks into
// the file itself (see Patch.InPlace), unless the file has other hard links
// (a rebuild would leave them the old content; writing in place would change
// them too) or cannot be opened for writing (read-only, or a running
// executable); then, and without p.InPlace, it rebuilds the file in a
// temporary one, verifying every block, and renames it over.
func (l LocalFS) Patch(ctx context.Context, p string, pt Patch, data io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if pt.InPlace {
		done, err := l.patchInPlace(ctx, p, pt, data)
		if done || err != nil {
			return err
		}
	}
	old, err := os.Open(osPath(p))
	if err != nil {
		return err
	}
	defer old.Close()
	w, err := l.Create(ctx, p, pt.Perm)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := ApplyPatch(ctx, w, old, pt, data); err != nil {
		return fmt.Errorf("patch %s: %w", p, err)
	}
	return w.Commit()
}

// patchInPlace applies pt to p in place if it can; done is false, with a nil
// error, when the file is not one to patch in place and nothing was written.
func (LocalFS) patchInPlace(ctx context.Context, p string, pt Patch, data io.Reader) (done bool, err error) {
	f, err := os.OpenFile(osPath(p), os.O_WRONLY, 0)
	if err != nil {
		return false, nil // the rebuild reports the error if it persists
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, nil
	}
	if !fi.Mode().IsRegular() || hardLinks(fi) > 1 {
		return false, nil
	}
	if err := patchInPlace(ctx, f, pt, data); err != nil {
		return true, fmt.Errorf("patch %s in place: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return true, fmt.Errorf("patch %s in place: %w", p, err)
	}
	return true, nil
}
