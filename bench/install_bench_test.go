package bench

// Install benchmarks: the device side of an update, a bundle decoded into a
// slot, as `bascule update install` does it (bench/install.sh measures the
// real command on a loop device; these are the in-process equivalent, for
// profiling).
//
//	go test -run=NONE -bench=InstallDecode -benchtime=1x ./bench
//	go test -run=NONE -bench=InstallDecodeXZ$ -benchtime=3x -cpuprofile cpu.out ./bench
//
// The payload is the first BENCH_INSTALL_MIB MiB (default 64, 8 with -short;
// 0 = all of it) of BENCH_INSTALL_IMAGE (default work/img-256M.ext4 from
// bench/mkimage.sh), or synthetic data shaped like an ext4 image when that
// file does not exist. Bundles (casync-64, sha512-256, deduplicated) are
// built once and cached in work/install-gobench/. MB/s is of the decoded
// payload.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/install"
)

type installBundle struct {
	path string
	hash hashes.Digest
	size int64 // decoded payload bytes
}

var (
	installMu      sync.Mutex
	installBundles = map[string]*installBundle{}
	installData    []byte
	installKey     string
)

// installPayload returns the payload bytes and a name describing them
// (read once per process).
func installPayload(b *testing.B) ([]byte, string) {
	if installData == nil {
		installData, installKey = readInstallPayload(b)
	}
	return installData, installKey
}

func readInstallPayload(b *testing.B) ([]byte, string) {
	mib := 64
	if testing.Short() {
		mib = 8
	}
	if s := os.Getenv("BENCH_INSTALL_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			b.Fatalf("BENCH_INSTALL_MIB=%q", s)
		}
		mib = n
	}
	img := os.Getenv("BENCH_INSTALL_IMAGE")
	if img == "" {
		img = filepath.Join("work", "img-256M.ext4")
	}
	f, err := os.Open(img)
	if err != nil {
		if os.Getenv("BENCH_INSTALL_IMAGE") != "" {
			b.Fatal(err)
		}
		n := mib << 20
		if n == 0 {
			n = 256 << 20
		}
		return installSynthetic(n), fmt.Sprintf("synthetic-%d", n)
	}
	defer f.Close()
	var r io.Reader = f
	if mib > 0 {
		r = io.LimitReader(f, int64(mib)<<20)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	return data, fmt.Sprintf("%s-%d-%d-%d", filepath.Base(img), fi.Size(), fi.ModTime().Unix(), len(data))
}

// installSynthetic is n bytes in 4 KiB-aligned extents of zeros (free
// space), words (text), short random instructions (code) and random bytes
// (compressed files), roughly like an ext4 root file system image.
func installSynthetic(n int) []byte {
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]byte, 0, n+(1<<20))
	for len(out) < n {
		end := len(out) + (1+r.IntN(256))*4096
		switch k := r.IntN(10); {
		case k < 3:
			out = append(out, make([]byte, end-len(out))...)
		case k < 6:
			for len(out) < end {
				w := 2 + r.IntN(4)*r.IntN(4)
				for i := 0; i < w; i++ {
					out = append(out, 'a'+byte(r.IntN(4)*r.IntN(7)))
				}
				out = append(out, " \n"[r.IntN(9)/8])
			}
		case k < 9:
			for len(out) < end {
				out = append(out, 0x48, 0x8b, byte(r.IntN(8)), byte(r.IntN(256)>>r.IntN(8)))
			}
		default:
			for len(out) < end {
				out = binary.LittleEndian.AppendUint64(out, r.Uint64())
			}
		}
		out = out[:end]
	}
	return out[:n]
}

// installBundleFor builds (or finds in the cache) the bundle of the payload
// with the given compression TOML.
func installBundleFor(b *testing.B, name, compression string) *installBundle {
	installMu.Lock()
	defer installMu.Unlock()
	data, key := installPayload(b)
	sum := sha256.Sum256([]byte(key + compression))
	id := fmt.Sprintf("%s-%x", name, sum[:6])
	if ib := installBundles[id]; ib != nil {
		return ib
	}
	cache := filepath.Join("work", "install-gobench")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(cache, id+".rugixb")
	if _, err := os.Stat(out); err != nil {
		dir := b.TempDir()
		os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "payloads", "rootfs.img"), data, 0o644); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(`update-type = "full"
hash-algorithm = "sha512-256"
[[payloads]]
filename = "rootfs.img"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-64", hash-algorithm = "sha512-256", deduplicate = true, compression = `+compression+` }
`), 0o644)
		b.Logf("building %s (%d MiB payload, cached for later runs)", out, len(data)>>20)
		if _, err := bundle.Build(dir, out, bundle.BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Open(out)
	if err != nil {
		b.Fatal(err)
	}
	r, err := bundle.NewReader(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	ib := &installBundle{path: out, hash: r.HeaderHash, size: int64(len(data))}
	installBundles[id] = ib
	return ib
}

// benchInstall runs install.Run into a preallocated file standing in for
// the slot's block device (install.OpenBlock: 1 MiB buffered writes, read
// back for repeats, fsync at the end), as the device does.
func benchInstall(b *testing.B, name, compression string, workers int) {
	b.StopTimer()
	ib := installBundleFor(b, name, compression)
	slot := filepath.Join(b.TempDir(), "slot.img")
	if err := os.WriteFile(slot, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(slot, ib.size+(1<<20)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(ib.size)
	b.ReportAllocs()
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(ib.path)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := install.Run(f, install.Options{
			Policy:  install.Policy{BundleHash: &ib.hash},
			Workers: workers,
			Resolve: func(p *bundle.Payload) (install.Target, string, error) {
				t, err := install.OpenBlock(slot)
				return t, "system-b", err
			},
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Written != ib.size {
			b.Fatalf("wrote %d bytes, want %d", rep.Written, ib.size)
		}
	}
	b.StopTimer()
	if b.N > 0 {
		got, _ := os.ReadFile(slot)
		installMu.Lock()
		want, _ := installPayload(b)
		installMu.Unlock()
		if !bytes.Equal(got[:len(want)], want) {
			b.Fatal("the slot does not hold the payload")
		}
	}
}

// benchInstallDiscard decodes and verifies the payload with a bundle.Reader
// and writes nothing (repeats are re-read from the bundle): the CPU cost of
// the pipeline alone.
func benchInstallDiscard(b *testing.B, name, compression string, workers int) {
	b.StopTimer()
	ib := installBundleFor(b, name, compression)
	b.SetBytes(ib.size)
	b.ReportAllocs()
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(ib.path)
		if err != nil {
			b.Fatal(err)
		}
		r, err := bundle.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		p, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		n, err := p.Decode(io.Discard, bundle.DecodeOptions{Workers: workers})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Next(); err != io.EOF {
			b.Fatalf("after the payload: %v", err)
		}
		f.Close()
		if n != ib.size {
			b.Fatalf("decoded %d bytes, want %d", n, ib.size)
		}
	}
}

const (
	installXZ   = `{ type = "xz", level = 6 }`
	installZstd = `{ type = "zstd", level = 3 }`
)

// Into a file slot, all CPUs (what the device does).
func BenchmarkInstallDecodeXZ(b *testing.B)   { benchInstall(b, "xz6", installXZ, 0) }
func BenchmarkInstallDecodeZstd(b *testing.B) { benchInstall(b, "zstd3", installZstd, 0) }

// One worker: the per-core speed of the pipeline.
func BenchmarkInstallDecodeXZ1Worker(b *testing.B)   { benchInstall(b, "xz6", installXZ, 1) }
func BenchmarkInstallDecodeZstd1Worker(b *testing.B) { benchInstall(b, "zstd3", installZstd, 1) }

// Decode and verify only, no output.
func BenchmarkInstallDecodeXZDiscard(b *testing.B)   { benchInstallDiscard(b, "xz6", installXZ, 0) }
func BenchmarkInstallDecodeZstdDiscard(b *testing.B) { benchInstallDiscard(b, "zstd3", installZstd, 0) }
