package bench

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

const (
	treeDirs    = 20
	treeFiles   = 5000 // in treeDirs directories
	treeMinSize = 256
	treeMaxSize = 4096
	bigSize     = 1 << 30
	bigChange   = 1 << 20
	seedText    = "rh bench: reproducible random data" // its first 32 bytes seed ChaCha8
)

// rng returns a fast random source of incompressible bytes, seeded with
// salt so separate generators differ.
func rng(salt byte) *rand.ChaCha8 {
	var seed [32]byte
	copy(seed[:], seedText)
	seed[31] ^= salt
	return rand.NewChaCha8(seed)
}

// wholeSecond is a modification time both tools keep exactly: the gateway's
// file system has one-second precision, so sub-second mtimes would read as
// changes to some tool and not to another.
func wholeSecond(t time.Time) time.Time { return t.Truncate(time.Second) }

// localTree returns the local 5,000-file tree, making it on first use:
// treeDirs directories of small files of random content and size.
func (e *env) localTree() (string, error) {
	e.treeOnce.Do(func() {
		root := filepath.Join(e.dir, "local", "tree")
		e.tree, e.treeErr = root, makeTree(root)
	})
	return e.tree, e.treeErr
}

func makeTree(root string) error {
	src := rng(1)
	sizes := rand.New(rand.NewPCG(1, 2))
	mtime := wholeSecond(time.Now().Add(-time.Hour))
	buf := make([]byte, treeMaxSize)
	var dirs []string
	for d := range treeDirs {
		dir := filepath.Join(root, fmt.Sprintf("dir%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		dirs = append(dirs, dir)
		for f := range treeFiles / treeDirs {
			b := buf[:treeMinSize+sizes.IntN(treeMaxSize-treeMinSize+1)]
			_, _ = src.Read(b)
			p := filepath.Join(dir, fmt.Sprintf("file%04d.dat", f))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
	}
	for _, d := range append(dirs, root) {
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// localBig returns the local 1 GiB file, making it on first use. Its bytes
// are random, so neither compression nor sparse handling can shortcut it.
func (e *env) localBig() (string, error) {
	e.bigOnce.Do(func() {
		progress("writing a 1 GiB file of random bytes")
		p := filepath.Join(e.dir, "local", "big.bin")
		e.big, e.bigMtime, e.changes = p, wholeSecond(time.Now().Add(-time.Hour)), rng(3)
		e.bigErr = writeRandom(p, bigSize, e.bigMtime)
	})
	return e.big, e.bigErr
}

func writeRandom(path string, size int64, mtime time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	w := bufio.NewWriterSize(f, 4<<20)
	_, err = io.CopyN(w, rng(2), size)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(path, mtime, mtime)
	}
	if err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	return nil
}

// changeBig overwrites 1 MiB of the local big file at a random offset with
// new random bytes and moves its mtime on by at least a second, so every
// tool's quick check (size and whole-second mtime) sees the change.
func (e *env) changeBig() error {
	f, err := os.OpenFile(e.big, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	// One stream for all changes: no change repeats earlier content that a
	// delta algorithm could find in the old file.
	buf := make([]byte, bigChange)
	_, _ = e.changes.Read(buf)
	_, err = f.WriteAt(buf, rand.Int64N(bigSize-bigChange+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench: change %s: %w", e.big, err)
	}
	e.bigMtime = e.bigMtime.Add(time.Second)
	if now := wholeSecond(time.Now()); now.After(e.bigMtime) {
		e.bigMtime = now
	}
	if err := os.Chtimes(e.big, e.bigMtime, e.bigMtime); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
