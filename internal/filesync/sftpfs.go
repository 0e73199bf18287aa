package filesync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/pkg/sftp"
)

// SFTPFS is an FS on an SFTP server. Every call is at least one round trip, so
// Walk lists one directory per request and the engine runs transfers
// concurrently. SFTP stores modification times in whole seconds, which
// MtimePrecision declares. It cannot hash remotely, so transfers to and from
// it send whole files.
type SFTPFS struct {
	c *sftp.Client
}

var (
	_ FS            = (*SFTPFS)(nil)
	_ TimePrecision = (*SFTPFS)(nil)
)

// NewSFTPFS wraps an SFTP client; the caller keeps ownership of it.
func NewSFTPFS(c *sftp.Client) *SFTPFS { return &SFTPFS{c: c} }

// MtimePrecision implements TimePrecision.
func (*SFTPFS) MtimePrecision() time.Duration { return time.Second }

// Stat implements FS.
func (s *SFTPFS) Stat(ctx context.Context, p string) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	fi, err := s.c.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	e := entryFromInfo(p, fi)
	if e.IsSymlink() {
		if e.LinkTarget, err = s.c.ReadLink(p); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

// Walk implements FS.
func (s *SFTPFS) Walk(ctx context.Context, root string, opts WalkOptions) ([]Entry, error) {
	return walkTree(ctx, s, root, opts)
}

func (s *SFTPFS) readDir(ctx context.Context, dir string) ([]Entry, error) {
	fis, err := s.c.ReadDirContext(ctx, dir)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(fis))
	for _, fi := range fis {
		e := entryFromInfo(fi.Name(), fi)
		if e.IsSymlink() {
			if e.LinkTarget, err = s.c.ReadLink(path.Join(dir, fi.Name())); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *SFTPFS) readSmallFile(ctx context.Context, name string, max int64) ([]byte, error) {
	f, err := s.c.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// Open implements FS; the *sftp.File it returns is an io.ReaderAt and reads
// with concurrent requests through WriteTo.
func (s *SFTPFS) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.c.Open(p)
}

// Create implements FS.
func (s *SFTPFS) Create(ctx context.Context, p string, perm fs.FileMode) (FileWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	dir, base := path.Split(p)
	tmp := path.Join(dir, "."+base+".rhtmp-"+hex.EncodeToString(rnd[:]))
	f, err := s.c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, err
	}
	return &sftpWriter{s: s, f: f, tmp: tmp, dst: p, perm: perm}, nil
}

type sftpWriter struct {
	s    *SFTPFS
	f    *sftp.File
	tmp  string
	dst  string
	perm fs.FileMode
	done bool
}

func (w *sftpWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// ReadFrom writes with concurrent requests. Concurrent writes can leave holes
// if they fail part way, which is harmless here: a failed temp file is
// removed, never renamed into place.
func (w *sftpWriter) ReadFrom(r io.Reader) (int64, error) {
	return w.f.ReadFromWithConcurrency(r, 0)
}

func (w *sftpWriter) Commit() error {
	if w.done {
		return errors.New("filesync: commit after commit or abort")
	}
	w.done = true
	err := w.f.Chmod(w.perm)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.s.rename(w.tmp, w.dst)
	}
	if err != nil {
		w.s.c.Remove(w.tmp)
	}
	return err
}

func (w *sftpWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return w.s.c.Remove(w.tmp)
}

// rename replaces newname atomically where the server offers the OpenSSH
// posix-rename extension; plain SFTP rename refuses to overwrite, so the
// fallback removes the old file first (briefly leaving no file there).
func (s *SFTPFS) rename(oldname, newname string) error {
	if _, ok := s.c.HasExtension("posix-rename@openssh.com"); ok {
		return s.c.PosixRename(oldname, newname)
	}
	if err := s.c.Remove(newname); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return s.c.Rename(oldname, newname)
}

// MkdirAll implements FS.
func (s *SFTPFS) MkdirAll(ctx context.Context, p string, perm fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := s.c.Stat(p); err == nil && fi.IsDir() {
		return nil // like os.MkdirAll: an existing directory keeps its mode
	}
	if err := s.c.MkdirAll(p); err != nil {
		return err
	}
	return s.c.Chmod(p, perm)
}

// Remove implements FS.
func (s *SFTPFS) Remove(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.c.Remove(p)
}

// Symlink implements FS.
func (s *SFTPFS) Symlink(ctx context.Context, target, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.c.Symlink(target, p)
}

// Chmod implements FS.
func (s *SFTPFS) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.c.Chmod(p, perm)
}

// Chtimes implements FS; SFTP keeps whole seconds.
func (s *SFTPFS) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.c.Chtimes(p, mtime, mtime)
}
