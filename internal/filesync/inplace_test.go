package filesync

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// patchRecorder is a LocalFS that records the Patches it is asked to apply,
// standing in for a node agent (which serves Patch with LocalFS.Patch).
type patchRecorder struct {
	LocalFS
	mu      sync.Mutex
	patches []Patch
}

func (r *patchRecorder) Patch(ctx context.Context, p string, pt Patch, data io.Reader) error {
	r.mu.Lock()
	r.patches = append(r.patches, pt)
	r.mu.Unlock()
	return r.LocalFS.Patch(ctx, p, pt, data)
}

func (r *patchRecorder) last(t *testing.T) Patch {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.patches) == 0 {
		t.Fatal("Patch was not called")
	}
	return r.patches[len(r.patches)-1]
}

// lowerInPlaceMin lets small test files qualify for in-place patching.
func lowerInPlaceMin(t *testing.T, n int64) {
	old := inPlaceMinSize
	inPlaceMinSize = n
	t.Cleanup(func() { inPlaceMinSize = old })
}

// changedBytes is what a delta from old to new must send with block size bs:
// every block of new that is not identical at the same offset in old.
func changedBytes(old, new []byte, bs int) int64 {
	var n int64
	for off := 0; off < len(new); off += bs {
		end := min(off+bs, len(new))
		if end > len(old) || end-off != min(bs, len(old)-off) || !bytes.Equal(new[off:end], old[off:end]) {
			n += int64(end - off)
		}
	}
	return n
}

// setFile writes content to p with mode 0644 and mtime mt.
func setFile(t *testing.T, p string, content []byte, mt time.Time) {
	t.Helper()
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func TestSyncDeltaInPlace(t *testing.T) {
	const bs = 4096
	lowerInPlaceMin(t, 1)
	old := randomBytes(40*bs+123, 10)
	cases := []struct {
		name    string
		edit    func([]byte) []byte
		inPlace bool
	}{
		{"same size, first block", func(b []byte) []byte { b[0]++; return b }, true},
		{"same size, middle block", func(b []byte) []byte { b[20*bs+17]++; return b }, true},
		{"same size, last (short) block", func(b []byte) []byte { b[len(b)-1]++; return b }, true},
		{"same size, first and last", func(b []byte) []byte { b[0]++; b[len(b)-1]++; return b }, true},
		{"grows", func(b []byte) []byte { return append(b, randomBytes(2*bs+7, 11)...) }, true},
		{"grows, middle changed", func(b []byte) []byte { b[7*bs]++; return append(b, 'x') }, true},
		{"shrinks", func(b []byte) []byte { return b[:33*bs+5] }, true},
		{"shrinks to a block boundary", func(b []byte) []byte { return b[:35*bs] }, true},
		{"shrinks, first changed", func(b []byte) []byte { b[1]++; return b[:38*bs+100] }, true},
		// A quarter or more of the blocks changed: rebuilt, atomically.
		{"many blocks changed", func(b []byte) []byte {
			for i := 0; i < len(b); i += 3 * bs {
				b[i]++
			}
			return b
		}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			src, dst := filepath.Join(srcDir, "f"), filepath.Join(dstDir, "f")
			cur := tc.edit(bytes.Clone(old))
			setFile(t, dst, old, baseTime)
			mt := baseTime.Add(timeStep(i))
			setFile(t, src, cur, mt)
			if err := os.Chmod(src, 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}

			rec := &patchRecorder{}
			st := mustSync(t, rec, slash(src), rec, slash(dst), Options{BlockSize: bs})

			if pt := rec.last(t); pt.InPlace != tc.inPlace || !pt.ModTime.Equal(mt) {
				t.Errorf("Patch.InPlace = %v, ModTime = %v; want %v, %v", pt.InPlace, pt.ModTime, tc.inPlace, mt)
			}
			want := changedBytes(old, cur, bs)
			if st.FilesSent != 1 || st.BytesSent != want || st.BytesSent+st.BytesSkipped != int64(len(cur)) {
				t.Errorf("stats = %+v, want 1 file, %d of %d bytes sent", st, want, len(cur))
			}
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, cur) {
				t.Fatalf("destination differs from source (%d vs %d bytes, %v)", len(got), len(cur), err)
			}
			after, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if same := os.SameFile(before, after); same != tc.inPlace {
				t.Errorf("same inode after sync = %v, want %v (in place)", same, tc.inPlace)
			}
			if after.Mode().Perm() != 0o600 || !after.ModTime().Equal(mt) {
				t.Errorf("destination mode %v mtime %v, want 0600 %v", after.Mode(), after.ModTime(), mt)
			}
			if again := mustSync(t, rec, slash(src), rec, slash(dst), Options{BlockSize: bs}); again.FilesSent != 0 {
				t.Errorf("second sync sent %d files, want 0", again.FilesSent)
			}
		})
	}
}

func TestSyncDeltaInPlacePolicy(t *testing.T) {
	const bs = 4096
	old := randomBytes(40*bs, 12)
	cur := bytes.Clone(old)
	cur[5*bs]++
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := filepath.Join(srcDir, "f"), filepath.Join(dstDir, "f")

	// Small files are rebuilt: the default threshold is far above 160 KiB.
	setFile(t, dst, old, baseTime)
	setFile(t, src, cur, baseTime.Add(time.Second))
	rec := &patchRecorder{}
	mustSync(t, rec, slash(src), rec, slash(dst), Options{BlockSize: bs})
	if rec.last(t).InPlace {
		t.Error("a small file was patched in place")
	}

	// A file with another hard link is rebuilt even when asked in place, so
	// the other name keeps the old content, as with any rebuild.
	lowerInPlaceMin(t, 1)
	setFile(t, dst, old, baseTime)
	link := filepath.Join(dstDir, "link")
	if err := os.Link(dst, link); err != nil {
		t.Fatalf("cannot make a hard link in the test dir: %v", err)
	}
	mustSync(t, rec, slash(src), rec, slash(dst), Options{BlockSize: bs})
	if !rec.last(t).InPlace {
		t.Fatal("Patch.InPlace not asked for")
	}
	if got, _ := os.ReadFile(link); !bytes.Equal(got, old) {
		t.Error("patching one hard link changed the other")
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, cur) {
		t.Error("destination differs from source")
	}
}

// failingFS serves file content that fails after limit bytes, as a
// connection dropping mid-transfer would.
type failingFS struct {
	LocalFS
	limit int64
}

var errInjected = errors.New("injected failure")

func (f failingFS) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	r, err := os.Open(osPath(p))
	if err != nil {
		return nil, err
	}
	return &failingReader{File: r, left: f.limit}, nil
}

// failingReader is a file whose reads fail once left bytes were read.
type failingReader struct {
	*os.File
	mu   sync.Mutex
	left int64
}

func (r *failingReader) take(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = int(min(int64(n), r.left))
	r.left -= int64(n)
	return n
}

func (r *failingReader) Read(p []byte) (int, error) {
	n := r.take(len(p))
	if n == 0 {
		return 0, errInjected
	}
	return r.File.Read(p[:n])
}

func (r *failingReader) ReadAt(p []byte, off int64) (int, error) {
	n := r.take(len(p))
	m, err := r.File.ReadAt(p[:n], off)
	if err == nil && m < len(p) {
		err = errInjected
	}
	return m, err
}

// corruptFS serves file content with one byte flipped at off, as a source
// modified after it was hashed would.
type corruptFS struct {
	LocalFS
	off int64
}

func (c corruptFS) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	b, err := os.ReadFile(osPath(p))
	if err != nil {
		return nil, err
	}
	b[c.off]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// TestSyncDeltaInPlaceInterrupted checks the crash-safety property of
// in-place patches: a patch that fails midway leaves the destination half
// written but never with the source's mtime, so the next sync does not skip
// it and repairs it.
func TestSyncDeltaInPlaceInterrupted(t *testing.T) {
	const bs = 4096
	lowerInPlaceMin(t, 1)
	old := randomBytes(40*bs, 13)
	cur := bytes.Clone(old)
	for _, b := range []int{2, 17, 31} {
		cur[b*bs+9]++
	}
	for _, tc := range []struct {
		name    string
		src     FS
		wantErr error
	}{
		// Dies after the first changed block and half the second.
		{"connection lost", failingFS{limit: bs + bs/2}, errInjected},
		// The second changed block does not match the sum hashed earlier.
		{"source changed", corruptFS{off: 17*bs + 100}, ErrChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			src, dst := filepath.Join(srcDir, "f"), filepath.Join(dstDir, "f")
			setFile(t, dst, old, baseTime)
			mt := baseTime.Add(time.Hour)
			setFile(t, src, cur, mt)

			rec := &patchRecorder{}
			_, err := Sync(context.Background(), tc.src, slash(src), rec, slash(dst), Options{BlockSize: bs})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Sync error = %v, want %v", err, tc.wantErr)
			}
			if !rec.last(t).InPlace {
				t.Fatal("the patch was not in place; this test needs it to be")
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[2*bs:3*bs], cur[2*bs:3*bs]) || bytes.Equal(got[:len(cur)], cur) {
				t.Fatal("expected a half-patched destination: first changed block new, rest not")
			}
			fi, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if fi.ModTime().Truncate(time.Second).Equal(mt.Truncate(time.Second)) {
				t.Fatalf("half-patched destination has the source's mtime %v", mt)
			}
			if !fi.ModTime().Equal(sentinelTime(mt)) {
				t.Errorf("half-patched destination mtime = %v, want the sentinel %v", fi.ModTime(), sentinelTime(mt))
			}
			// A crash (no deferred clean-up) would leave the write time as
			// mtime; the size marker alone must then tell.
			if fi.Size() == int64(len(cur)) {
				t.Errorf("half-patched destination has the source's size %d", fi.Size())
			}

			// A plain size+mtime sync repairs it.
			st := mustSync(t, LocalFS{}, slash(src), rec, slash(dst), Options{BlockSize: bs})
			if st.FilesSent != 1 {
				t.Errorf("re-sync sent %d files, want 1", st.FilesSent)
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, cur) {
				t.Error("re-sync did not repair the destination")
			}
			if fi, _ := os.Stat(dst); !fi.ModTime().Equal(mt) {
				t.Errorf("mtime after re-sync = %v, want %v", fi.ModTime(), mt)
			}
		})
	}
}

func TestSentinelTime(t *testing.T) {
	for _, src := range []time.Time{{}, baseTime, time.Unix(0, 0), time.Unix(1, 0), time.Unix(-5, 0), time.Unix(2*86400, 0)} {
		if s := sentinelTime(src); s.Truncate(time.Second).Equal(src.Truncate(time.Second)) ||
			s.Sub(src).Abs() < time.Hour {
			t.Errorf("sentinelTime(%v) = %v, too close", src, s)
		}
	}
}

func TestBlockSizeFor(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{
		{0, 64 << 10},
		{1 << 20, 64 << 10},
		{512 << 20, 64 << 10},
		{512<<20 + 1, 128 << 10},
		{1 << 30, 128 << 10},
		{8 << 30, 1 << 20},
		{1 << 50, 8 << 20},
	} {
		if got := BlockSizeFor(tc.size); got != tc.want {
			t.Errorf("BlockSizeFor(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

// TestSyncDeltaLargeFileSendsChange runs the default policy (block size,
// in-place threshold) on a sparse 96 MiB file with 1 MiB changed at an
// unaligned offset: about 1 MiB crosses, patched in place.
func TestSyncDeltaLargeFileSendsChange(t *testing.T) {
	const size = 96 << 20
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := filepath.Join(srcDir, "big"), filepath.Join(dstDir, "big")
	makeSparse(t, src, size)
	makeSparse(t, dst, size)
	f, err := os.OpenFile(src, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	change := randomBytes(1<<20, 14)
	if _, err := f.WriteAt(change, 40<<20+12345); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mt := baseTime.Add(time.Minute)
	os.Chtimes(src, mt, mt)

	rec := &patchRecorder{}
	st := mustSync(t, rec, slash(src), rec, slash(dst), Options{})
	bs := int64(BlockSizeFor(size))
	if st.BytesSent < 1<<20 || st.BytesSent > 1<<20+bs {
		t.Errorf("sent %d bytes for a 1 MiB change, want at most one %d-byte block more", st.BytesSent, bs)
	}
	if !rec.last(t).InPlace {
		t.Error("1 MiB of 96 MiB changed and the patch was not in place")
	}
	b, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(b[40<<20+12345:][:1<<20], change) {
		t.Fatalf("destination lacks the change (%v)", err)
	}
	checkMarkers(t, dst, size, []int64{0, size / 3, size - 8})
}

// TestPatchInPlaceRejectsBadPatch checks that a malformed patch fails before
// the file is touched.
func TestPatchInPlaceRejectsBadPatch(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	setFile(t, p, []byte("0123456789"), baseTime)
	sums, _ := HashBlocksReader(context.Background(), bytes.NewReader([]byte("abcdefghij")), 4)
	for name, pt := range map[string]Patch{
		"literal out of range": {BlockSize: 4, Sums: sums, Literal: []int{3}},
		"literal out of order": {BlockSize: 4, Sums: sums, Literal: []int{1, 0}},
		"short middle block":   {BlockSize: 4, Sums: []BlockSum{sums[2], sums[0]}, Literal: []int{0}},
	} {
		pt.InPlace, pt.Perm = true, 0o644
		if err := (LocalFS{}).Patch(context.Background(), p, pt, bytes.NewReader([]byte("abcdefghij"))); err == nil {
			t.Errorf("%s: Patch succeeded", name)
		}
		fi, _ := os.Stat(p)
		if got := readFile(t, p); got != "0123456789" || !fi.ModTime().Equal(baseTime) {
			t.Errorf("%s: file changed to %q, mtime %v", name, got, fi.ModTime())
		}
	}
}

// hashBarrierFS lets no HashBlocks finish until two are in flight at once,
// so an engine hashing source and destination one after the other fails.
type hashBarrierFS struct {
	LocalFS
	mu      sync.Mutex
	arrived int
	both    chan struct{}
	failDst string // HashBlocks of this path fails (after the barrier)
}

func (h *hashBarrierFS) HashBlocks(ctx context.Context, p string, bs int) ([]BlockSum, error) {
	h.mu.Lock()
	if h.arrived++; h.arrived == 2 {
		close(h.both)
	}
	h.mu.Unlock()
	select {
	case <-h.both:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p == h.failDst {
		return nil, errInjected
	}
	return h.LocalFS.HashBlocks(ctx, p, bs)
}

func TestSyncDeltaHashesBothSidesAtOnce(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, dst := filepath.Join(srcDir, "f"), filepath.Join(dstDir, "f")
	setFile(t, dst, randomBytes(10_000, 15), baseTime)
	setFile(t, src, randomBytes(10_000, 16), baseTime.Add(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	for _, checksum := range []bool{false, true} {
		h := &hashBarrierFS{both: make(chan struct{})}
		if _, err := Sync(ctx, h, slash(src), h, slash(dst), Options{BlockSize: 4096, Checksum: checksum}); err != nil {
			t.Fatalf("Checksum=%v: %v", checksum, err)
		}
	}
	// A failure on one side cancels the other and is the one reported.
	setFile(t, src, randomBytes(10_000, 17), baseTime.Add(2*time.Second))
	h := &hashBarrierFS{both: make(chan struct{}), failDst: slash(dst)}
	_, err := Sync(ctx, h, slash(src), h, slash(dst), Options{BlockSize: 4096})
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "hash "+slash(dst)) {
		t.Errorf("err = %v, want the destination's hash failure, naming it", err)
	}
}
