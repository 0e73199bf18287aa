//go:build unix

package filesync

import (
	"io/fs"
	"syscall"
)

// hardLinks returns the link count of the file fi describes (1 if unknown).
func hardLinks(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
