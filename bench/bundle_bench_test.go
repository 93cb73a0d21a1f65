// Package bench holds Bascule's benchmarks: Go benchmarks of the block
// encoding pipelines here, and shell scripts comparing bascule-bundler with
// casync and the usual CLIs on real ext4 images (see docs/benchmarks.md).
//
//	go test -run=NONE -bench=. -benchtime=1x ./bench         # quick
//	go test -run=NONE -bench=. -benchtime=3x ./bench         # steadier
//	go test -run=NONE -bench=EncodeCasync64XZ -benchtime=1x -cpuprofile cpu.out ./bench
//
// The input is synthetic but shaped like a root file system image (see
// imageLike): BENCH_MIB sets its size (default 32 MiB, 4 MiB with -short).
// BENCH_IMAGE=path uses (the first BENCH_MIB MiB of) a real image instead,
// e.g. one made by bench/mkimage.sh:
//
//	BENCH_IMAGE=bench/_work/img-256M.ext4 BENCH_MIB=256 go test -run=NONE -bench=Build -benchtime=1x ./bench
package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/bascule-ota/bascule/internal/blockenc"
	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

var casync64 = chunker.Spec{Kind: chunker.Casync, KiB: 64}

// inputSize is the size of the synthetic image.
func inputSize() int {
	if s := os.Getenv("BENCH_MIB"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n << 20
		}
	}
	if testing.Short() {
		return 4 << 20
	}
	return 32 << 20
}

var (
	inputOnce sync.Once
	input     []byte
)

func benchInput() []byte {
	inputOnce.Do(func() {
		if path := os.Getenv("BENCH_IMAGE"); path != "" {
			f, err := os.Open(path)
			if err != nil {
				panic(err)
			}
			defer f.Close()
			input, err = io.ReadAll(io.LimitReader(f, int64(inputSize())))
			if err != nil {
				panic(err)
			}
			return
		}
		input = imageLike(inputSize(), 1)
	})
	return input
}

// imageLike returns n bytes shaped like an ext4 image of a Debian /usr at
// 70% fill:
//
//   - ~30% zeros (free space; casync-64 cuts them into identical max-size
//     blocks, so they deduplicate),
//   - ~30% "text": words from a Zipf-distributed vocabulary, in lines,
//   - ~30% "code": 2-8 byte instructions from a small Zipf-distributed set
//     with random immediates, like x86-64 machine code,
//   - ~10% random bytes (already compressed data: .gz, .png, ...),
//
// in extents of 4 KiB to 1 MiB, 4 KiB aligned like file system blocks.
// Deterministic for a given seed. It is a little harder to compress than the
// bench/mkimage.sh images: casync-64 + xz-6 gives 3.4:1 here and 5.0:1 on
// img-1G.ext4 (zstd-3: 3.3:1 and 4.5:1).
func imageLike(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6261736375))
	words := make([][]byte, 4096)
	for i := range words {
		w := make([]byte, 2+r.IntN(9))
		for j := range w {
			w[j] = 'a' + byte(r.IntN(26))
		}
		words[i] = w
	}
	ops := make([][]byte, 512)
	for i := range ops {
		op := make([]byte, 2+r.IntN(7))
		for j := range op {
			op[j] = byte(r.Uint32())
		}
		ops[i] = op
	}
	zw := rand.NewZipf(r, 1.1, 1, uint64(len(words)-1))
	zo := rand.NewZipf(r, 1.2, 1, uint64(len(ops)-1))

	out := make([]byte, 0, n+(1<<20))
	for len(out) < n {
		ext := (1 + r.IntN(256)) * 4096 // 4 KiB .. 1 MiB
		end := len(out) + ext
		switch k := r.IntN(10); {
		case k < 3: // zeros
			out = append(out, make([]byte, ext)...)
		case k < 6: // text
			col := 0
			for len(out) < end {
				w := words[zw.Uint64()]
				out = append(out, w...)
				col += len(w) + 1
				if col > 72 {
					out = append(out, '\n')
					col = 0
				} else {
					out = append(out, ' ')
				}
			}
		case k < 9: // code
			for len(out) < end {
				out = append(out, ops[zo.Uint64()]...)
				if r.IntN(4) == 0 {
					out = binary.LittleEndian.AppendUint32(out, uint32(r.IntN(1<<16)))
				}
			}
		default: // incompressible
			for len(out) < end {
				out = binary.LittleEndian.AppendUint64(out, r.Uint64())
			}
		}
		out = out[:end]
	}
	return out[:n]
}

func options(compression string, level int) blockenc.Options {
	return blockenc.Options{Chunker: casync64, HashAlg: hashes.SHA512_256, Dedup: true, Compression: compression, Level: level}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func benchEncode(b *testing.B, compression string, level int) {
	in := benchInput()
	o := options(compression, level)
	o.FileHash = hashes.SHA512_256.New() // as bundle.Build does
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	var out int64
	for i := 0; i < b.N; i++ {
		o.FileHash.Reset()
		var w countWriter
		if _, err := blockenc.Encode(bytes.NewReader(in), o, &w); err != nil {
			b.Fatal(err)
		}
		out = w.n
	}
	b.ReportMetric(float64(len(in))/float64(out), "ratio")
}

// Encode: chunk (casync-64), hash (sha512-256), deduplicate, compress on all
// CPUs, as `bascule-bundler bundle` does. MB/s is of the input.
func BenchmarkEncodeCasync64XZ(b *testing.B)   { benchEncode(b, "xz", 6) }
func BenchmarkEncodeCasync64Zstd(b *testing.B) { benchEncode(b, "zstd", 3) }
func BenchmarkEncodeCasync64None(b *testing.B) { benchEncode(b, "", 0) }

type encoded struct {
	data  []byte
	table *blockenc.Table
}

var (
	encMu    sync.Mutex
	encCache = map[string]*encoded{}
)

// encodedInput encodes the benchmark input once per compression.
func encodedInput(b *testing.B, compression string, level int) *encoded {
	encMu.Lock()
	defer encMu.Unlock()
	key := fmt.Sprint(compression, level)
	if e := encCache[key]; e != nil {
		return e
	}
	o := options(compression, level)
	var buf bytes.Buffer
	res, err := blockenc.Encode(bytes.NewReader(benchInput()), o, &buf)
	if err != nil {
		b.Fatal(err)
	}
	bh, bs, err := res.EncodeTable(o)
	if err != nil {
		b.Fatal(err)
	}
	t, err := blockenc.NewTable(o.Chunker, o.HashAlg, o.Dedup, o.Compression, bh, bs, uint64(buf.Len()))
	if err != nil {
		b.Fatal(err)
	}
	e := &encoded{data: buf.Bytes(), table: t}
	encCache[key] = e
	return e
}

func benchDecode(b *testing.B, compression string, level int) {
	b.StopTimer()
	e := encodedInput(b, compression, level)
	n := int64(len(benchInput()))
	b.SetBytes(n)
	b.ReportAllocs()
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		// Verify: decode and check every block and the file hash, write
		// nothing (repeats are re-read from the bundle data).
		src := bytes.NewReader(e.data)
		res, err := blockenc.Decode(src, e.table, io.Discard, blockenc.DecodeOptions{
			FileHash: hashes.SHA512_256.New(), SourceAt: bytes.NewReader(e.data)})
		if err != nil {
			b.Fatal(err)
		}
		if res.Size != n {
			b.Fatalf("decoded %d bytes, want %d", res.Size, n)
		}
	}
}

// Decode: read stored blocks, decompress and hash them on all CPUs, check
// every hash, as `bascule-bundler verify` does. MB/s is of the decoded
// payload.
func BenchmarkDecodeXZ(b *testing.B)   { benchDecode(b, "xz", 6) }
func BenchmarkDecodeZstd(b *testing.B) { benchDecode(b, "zstd", 3) }
func BenchmarkDecodeNone(b *testing.B) { benchDecode(b, "", 0) }

// The stages alone, on one core, for the profile breakdown.

func BenchmarkStageChunkCasync64(b *testing.B) {
	in := benchInput()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		c := casync64.New(bytes.NewReader(in))
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkStageSHA512_256(b *testing.B) {
	in := benchInput()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		for p := in; len(p) > 0; p = p[min(len(p), 64<<10):] {
			hashes.SHA512_256.Sum(p[:min(len(p), 64<<10)])
		}
	}
}

func benchStageCompress(b *testing.B, kind string, level int) {
	in := benchInput()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var out int
	for i := 0; i < b.N; i++ {
		out = 0
		for p := in; len(p) > 0; p = p[min(len(p), 64<<10):] {
			c, err := blockenc.Compress(kind, level, p[:min(len(p), 64<<10)])
			if err != nil {
				b.Fatal(err)
			}
			out += len(c)
		}
	}
	b.ReportMetric(float64(len(in))/float64(out), "ratio")
}

func BenchmarkStageCompressXZ6(b *testing.B)   { benchStageCompress(b, "xz", 6) }
func BenchmarkStageCompressZstd3(b *testing.B) { benchStageCompress(b, "zstd", 3) }

func benchStageDecompress(b *testing.B, kind string, level int) {
	in := benchInput()
	var blocks [][]byte
	for p := in; len(p) > 0; p = p[min(len(p), 64<<10):] {
		c, err := blockenc.Compress(kind, level, p[:min(len(p), 64<<10)])
		if err != nil {
			b.Fatal(err)
		}
		blocks = append(blocks, c)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range blocks {
			if _, err := blockenc.Decompress(kind, c, 256<<10, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkStageDecompressXZ(b *testing.B)   { benchStageDecompress(b, "xz", 6) }
func BenchmarkStageDecompressZstd(b *testing.B) { benchStageDecompress(b, "zstd", 3) }

// Build: the whole of `bascule-bundler bundle` (manifest, encode into a
// temporary file, header, copy into the bundle, fsync) on a payload file.
func benchBuild(b *testing.B, compression string) {
	in := benchInput()
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "payloads"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "payloads", "rootfs.img"), in, 0o644); err != nil {
		b.Fatal(err)
	}
	manifest := `update-type = "full"
hash-algorithm = "sha512-256"

[[payloads]]
filename = "rootfs.img"
[payloads.delivery]
type = "slot"
slot = "rootfs"
[payloads.block-encoding]
chunker = "casync-64"
hash-algorithm = "sha512-256"
deduplicate = true
compression = ` + compression + "\n"
	if err := os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(manifest), 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "out.rugixb")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bundle.Build(dir, out, bundle.BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if fi, err := os.Stat(out); err == nil {
		b.ReportMetric(float64(len(in))/float64(fi.Size()), "ratio")
	}
}

func BenchmarkBuildXZ(b *testing.B)   { benchBuild(b, `{ type = "xz", level = 6 }`) }
func BenchmarkBuildZstd(b *testing.B) { benchBuild(b, `{ type = "zstd", level = 3 }`) }

// xz levels 7-9 use ulikunitz/xz's binary-tree match finder, which is
// pathologically slow (and compresses worse than level 6): these compress
// one 64 KiB block only, of image-like data and of zeros, at levels 6 and 9.
func benchStageXZBlock(b *testing.B, level int, zeros bool) {
	blk := benchInput()[:64<<10]
	if zeros {
		blk = make([]byte, 64<<10)
	}
	b.SetBytes(int64(len(blk)))
	var out int
	for i := 0; i < b.N; i++ {
		c, err := blockenc.Compress("xz", level, blk)
		if err != nil {
			b.Fatal(err)
		}
		out = len(c)
	}
	b.ReportMetric(float64(len(blk))/float64(out), "ratio")
}

func BenchmarkStageXZ6Block(b *testing.B)     { benchStageXZBlock(b, 6, false) }
func BenchmarkStageXZ9Block(b *testing.B)     { benchStageXZBlock(b, 9, false) }
func BenchmarkStageXZ6ZeroBlock(b *testing.B) { benchStageXZBlock(b, 6, true) }
func BenchmarkStageXZ9ZeroBlock(b *testing.B) { benchStageXZBlock(b, 9, true) }
