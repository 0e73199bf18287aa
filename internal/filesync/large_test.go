package filesync

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// probeFS samples the heap as its files are read, every probeEvery bytes, so
// a test can bound memory without timing anything.
type probeFS struct {
	FS
	mu   sync.Mutex
	peak uint64
}

const probeEvery = 8 << 20

func (p *probeFS) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := p.FS.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &probeReader{ReadCloser: r, fs: p}, nil
}

type probeReader struct {
	io.ReadCloser
	fs   *probeFS
	next int64
	n    int64
}

func (r *probeReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.n += int64(n)
	if r.n >= r.next {
		r.next += probeEvery
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.fs.mu.Lock()
		r.fs.peak = max(r.fs.peak, ms.HeapAlloc)
		r.fs.mu.Unlock()
	}
	return n, err
}

// makeSparse creates a sparse file of size bytes with a marker at a few offsets.
func makeSparse(t *testing.T, p string, size int64) []int64 {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	offs := []int64{0, size / 3, size / 2, size - 8}
	for _, off := range offs {
		if _, err := f.WriteAt([]byte("MARKER!!"), off); err != nil {
			t.Fatal(err)
		}
	}
	return offs
}

func checkMarkers(t *testing.T, p string, size int64, offs []int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() != size {
		t.Fatalf("%s: size %d, want %d", p, fi.Size(), size)
	}
	for _, off := range offs {
		b := make([]byte, 8)
		if _, err := f.ReadAt(b, off); err != nil || string(b) != "MARKER!!" {
			t.Errorf("%s: at %d got %q (%v)", p, off, b, err)
		}
	}
}

func TestSyncLargeFileBoundedMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		dst  func(t *testing.T) FS
	}{
		{"local", 512 << 20, func(*testing.T) FS { return LocalFS{} }},
		{"sftp", 256 << 20, func(t *testing.T) FS { return newSFTP(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			offs := makeSparse(t, filepath.Join(src, "big"), tc.size)
			dstFS := tc.dst(t)
			probe := &probeFS{FS: LocalFS{}}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc

			st := mustSync(t, probe, slash(src), dstFS, slash(dst), Options{})
			if st.BytesSent != tc.size {
				t.Fatalf("sent %d bytes, want %d", st.BytesSent, tc.size)
			}
			checkMarkers(t, filepath.Join(dst, "big"), tc.size, offs)
			if probe.peak == 0 {
				t.Fatal("the heap was never sampled")
			}
			t.Logf("heap grew by %d KiB copying %d MiB", (int64(probe.peak)-int64(base))>>10, tc.size>>20)
			const limit = 48 << 20
			if grew := int64(probe.peak) - int64(base); grew > limit {
				t.Errorf("heap grew by %d MiB while copying %d MiB, want under %d MiB", grew>>20, tc.size>>20, limit>>20)
			}
		})
	}
}

// barrierFS lets no Open through until want of them are waiting at once, so
// a sequential engine would never get past the first file.
type barrierFS struct {
	FS
	want    int
	mu      sync.Mutex
	arrived int
	release chan struct{}
}

func (b *barrierFS) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.want {
		close(b.release)
	}
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.FS.Open(ctx, name)
}

func TestSyncTransfersConcurrently(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	tree := map[string]node{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		tree[n] = node{content: n}
	}
	writeTree(t, src, tree)
	b := &barrierFS{FS: plainFS{LocalFS{}}, want: 4, release: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	st, err := Sync(ctx, b, slash(src), LocalFS{}, slash(dst), Options{Parallel: 4})
	if err != nil || st.FilesSent != 7 {
		t.Fatalf("Sync = %+v, %v; want 7 files sent with 4 opens in flight at once", st, err)
	}
}
