//go:build !unix

package filesync

import "io/fs"

// hardLinks returns 1: the link count is not portable to read here, and
// LocalFS only uses it to avoid patching a shared file in place.
func hardLinks(fs.FileInfo) uint64 { return 1 }
