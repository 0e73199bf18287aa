package filesync

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchDeltaSize is the file size of BenchmarkDelta1GiBChanged1MiB: 1 GiB,
// 256 MiB with -short, or FILESYNC_BENCH_MIB MiB.
func benchDeltaSize(b *testing.B) int64 {
	if v := os.Getenv("FILESYNC_BENCH_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("FILESYNC_BENCH_MIB=%q: want a positive number of MiB", v)
		}
		return n << 20
	}
	if testing.Short() {
		return 256 << 20
	}
	return 1 << 30
}

// writeRandomFile fills p with size pseudo-random (incompressible) bytes.
func writeRandomFile(tb testing.TB, p string, size int64, seed uint64) {
	tb.Helper()
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 1<<20)
	for done := int64(0); done < size; {
		n := min(int64(len(buf)), size-done)
		for i := 0; i < int(n); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < int(n); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:n]); err != nil {
			tb.Fatal(err)
		}
		done += n
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	// Flushed now, so that the first sync's fsync does not pay for it.
	if err := out.Sync(); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkDelta1GiBChanged1MiB re-syncs a large file (see benchDeltaSize)
// after 1 MiB at a random offset changed, LocalFS to LocalFS through the
// delta path (LocalFS is a Hasher and a Patcher, as the node agent is). It is
// the engine's share of bench's Resync1GBChanged1MB, without the network.
func BenchmarkDelta1GiBChanged1MiB(b *testing.B) {
	size := benchDeltaSize(b)
	dir := b.TempDir()
	src, dst := filepath.Join(dir, "src.bin"), filepath.Join(dir, "dst.bin")
	writeRandomFile(b, src, size, 1)
	copyFile(b, src, dst)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(2, 2))
	change := make([]byte, 1<<20)
	mt := time.Now().Add(-time.Hour)
	b.SetBytes(size)
	b.ResetTimer()
	var sent int64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range change {
			change[j] = byte(rnd.Uint32())
		}
		f, err := os.OpenFile(src, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.WriteAt(change, rnd.Int64N(size-int64(len(change)))); err != nil {
			b.Fatal(err)
		}
		f.Close()
		mt = mt.Add(time.Second)
		if err := os.Chtimes(src, mt, mt); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := Sync(ctx, LocalFS{}, src, LocalFS{}, dst, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if st.FilesSent != 1 {
			b.Fatalf("sent %d files, want 1", st.FilesSent)
		}
		sent += st.BytesSent
	}
	b.ReportMetric(float64(sent)/float64(b.N), "literal-B/op")
}
