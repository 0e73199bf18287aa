package filesync

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// maxMergeFileSize bounds how much of a per-directory filter file is read; a
// .gitignore larger than this is almost certainly not one.
const maxMergeFileSize = 1 << 20

// dirReader is what the shared tree walker needs from a file system.
type dirReader interface {
	// readDir lists dir without following symlinks; Entry.Path is the base name
	// and LinkTarget is set for symlinks.
	readDir(ctx context.Context, dir string) ([]Entry, error)
	// readSmallFile reads at most max bytes of a file.
	readSmallFile(ctx context.Context, name string, max int64) ([]byte, error)
}

// walkTree implements FS.Walk for file systems that list one directory at a
// time, applying filter rules and per-directory merge files as it descends.
func walkTree(ctx context.Context, r dirReader, root string, opts WalkOptions) ([]Entry, error) {
	f, err := ParseFilter(opts.Rules)
	if err != nil {
		return nil, err
	}
	merges := f.mergeFiles(opts.Side)
	var out []Entry
	var visit func(dir, rel string, layers []mergeLayer) error
	visit = func(dir, rel string, layers []mergeLayer) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := r.readDir(ctx, dir)
		if err != nil {
			return fmt.Errorf("filesync: list %s: %w", dir, err)
		}
		slices.SortFunc(ents, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
		if len(merges) > 0 {
			layer := mergeLayer{dir: rel}
			for idx, name := range merges {
				i, found := slices.BinarySearchFunc(ents, name, func(e Entry, n string) int { return strings.Compare(e.Path, n) })
				if !found || !ents[i].IsRegular() {
					continue
				}
				p := path.Join(dir, name)
				data, err := r.readSmallFile(ctx, p, maxMergeFileSize)
				if err != nil {
					return fmt.Errorf("filesync: read filter file %s: %w", p, err)
				}
				rules, err := parseMergeFile(string(data), f.rules[idx].style)
				if err != nil {
					return fmt.Errorf("filesync: filter file %s: %w", p, err)
				}
				if layer.rules == nil {
					layer.rules = map[int][]rule{}
				}
				layer.rules[idx] = rules
			}
			if layer.rules != nil {
				layers = append(layers[:len(layers):len(layers)], layer)
			}
		}
		for _, e := range ents {
			name := e.Path
			if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
				continue
			}
			e.Path = name
			if rel != "" {
				e.Path = rel + "/" + name
			}
			if f.excluded(layers, e.Path, e.IsDir(), opts.Side) {
				continue
			}
			out = append(out, e)
			if e.IsDir() {
				if err := visit(path.Join(dir, name), e.Path, layers); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit(root, "", nil); err != nil {
		return nil, err
	}
	return out, nil
}

// entryFromInfo converts an fs.FileInfo; the caller fills LinkTarget.
func entryFromInfo(p string, fi fs.FileInfo) Entry {
	e := Entry{Path: p, Mode: fi.Mode(), ModTime: fi.ModTime()}
	if fi.Mode().IsRegular() {
		e.Size = fi.Size()
	}
	return e
}
