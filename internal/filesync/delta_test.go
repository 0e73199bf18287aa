package filesync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingFS is a LocalFS whose Hasher and Patcher calls are counted, standing
// in for a node agent that hashes its own files.
type countingFS struct {
	LocalFS
	hashes, patches atomic.Int32
}

func (c *countingFS) HashBlocks(ctx context.Context, p string, bs int) ([]BlockSum, error) {
	c.hashes.Add(1)
	return c.LocalFS.HashBlocks(ctx, p, bs)
}

func (c *countingFS) Patch(ctx context.Context, p string, pt Patch, data io.Reader) error {
	c.patches.Add(1)
	return c.LocalFS.Patch(ctx, p, pt, data)
}

// plainFS hides LocalFS's optional capabilities.
type plainFS struct{ FS }

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestSyncDeltaSendsOnlyChangedBlocks(t *testing.T) {
	const bs = 64 << 10
	old := randomBytes(40*bs+123, 1)
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dst, "big"), old, 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		edit    func([]byte) []byte
		literal int64 // bytes expected on the wire
	}{
		{"two blocks changed", func(b []byte) []byte {
			b[5*bs+7]++
			b[30*bs]++
			return b
		}, 2 * bs},
		// The old short tail block becomes a full one, plus one more block of 10.
		{"appended", func(b []byte) []byte { return append(b, randomBytes(bs+10, 2)...) }, bs + 10 + 123},
		{"truncated", func(b []byte) []byte { return b[:10*bs+5] }, 5},
		{"same content, new mtime", func(b []byte) []byte { return b }, 0},
	}
	cur := old
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur = tc.edit(bytes.Clone(cur))
			p := filepath.Join(src, "big")
			if err := os.WriteFile(p, cur, 0o600); err != nil {
				t.Fatal(err)
			}
			mt := baseTime.Add(-timeStep(i))
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
			fsys := &countingFS{}
			st := mustSync(t, fsys, slash(src), fsys, slash(dst), Options{BlockSize: bs})
			if fsys.hashes.Load() != 2 {
				t.Errorf("HashBlocks called %d times, want 2 (once per side)", fsys.hashes.Load())
			}
			if st.BytesSent != tc.literal || st.BytesSent+st.BytesSkipped != int64(len(cur)) {
				t.Errorf("stats = %+v, want %d bytes sent of %d", st, tc.literal, len(cur))
			}
			got, err := os.ReadFile(filepath.Join(dst, "big"))
			if err != nil || !bytes.Equal(got, cur) {
				t.Fatalf("destination differs from source (%v)", err)
			}
			fi, _ := os.Stat(filepath.Join(dst, "big"))
			if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mt) {
				t.Errorf("destination mode %v mtime %v, want 0600 %v", fi.Mode(), fi.ModTime(), mt)
			}
		})
	}

	// Without a Hasher on both sides, whole files move.
	cur = append(cur, 'x')
	if err := os.WriteFile(filepath.Join(src, "big"), cur, 0o600); err != nil {
		t.Fatal(err)
	}
	st := mustSync(t, plainFS{LocalFS{}}, slash(src), LocalFS{}, slash(dst), Options{BlockSize: bs})
	if st.BytesSent != int64(len(cur)) {
		t.Errorf("whole-file fallback sent %d bytes, want %d", st.BytesSent, len(cur))
	}
}

func timeStep(i int) time.Duration { return time.Duration(i+1) * time.Second }

// lyingFS reports block sums for content other than what it serves, as a
// source file modified between hashing and reading would.
type lyingFS struct{ LocalFS }

func (lyingFS) HashBlocks(ctx context.Context, p string, bs int) ([]BlockSum, error) {
	return HashBlocksReader(ctx, bytes.NewReader(bytes.Repeat([]byte("z"), 3*bs)), bs)
}

func TestSyncDeltaDetectsChangeDuringTransfer(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]node{"f": {content: "source content, longer", mtime: baseTime.Add(1e9)}})
	writeTree(t, dst, map[string]node{"f": {content: "old"}})
	_, err := Sync(context.Background(), lyingFS{}, slash(src), LocalFS{}, slash(dst), Options{BlockSize: 4})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
	if got := listTree(t, dst); len(got) != 1 || readFile(t, filepath.Join(dst, "f")) != "old" {
		t.Errorf("destination after failed patch: %q, want the old file alone", got)
	}
}

func TestHashBlocksReader(t *testing.T) {
	data := randomBytes(10_000, 3)
	sums, err := HashBlocksReader(context.Background(), bytes.NewReader(data), 4096)
	if err != nil || len(sums) != 3 || sums[2].Size != 10_000-8192 {
		t.Fatalf("sums = %d blocks (%v), want 3 with a short last one", len(sums), err)
	}
	if sums, _ := HashBlocksReader(context.Background(), bytes.NewReader(nil), 4096); len(sums) != 0 {
		t.Errorf("empty input has %d blocks, want 0", len(sums))
	}
	b, err := json.Marshal(sums[0])
	if err != nil {
		t.Fatal(err)
	}
	var back BlockSum
	if err := json.Unmarshal(b, &back); err != nil || back != sums[0] {
		t.Errorf("JSON round trip of %s gave %+v, %v", b, back, err)
	}
}
