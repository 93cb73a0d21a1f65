package bundle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/blockenc"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// testPayload makes data that exercises deduplication and compression:
// random runs, zero runs, repeated text and repeated random blocks.
func testPayload(size int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	out := make([]byte, 0, size)
	rep := make([]byte, 70000)
	rng.Read(rep)
	for len(out) < size {
		n := rng.Intn(200000) + 1
		switch rng.Intn(4) {
		case 0:
			b := make([]byte, n)
			rng.Read(b)
			out = append(out, b...)
		case 1:
			out = append(out, make([]byte, n)...)
		case 2:
			out = append(out, bytes.Repeat([]byte("bascule bundle text "), n/20+1)...)
		case 3:
			out = append(out, rep...)
		}
	}
	return out[:size]
}

// makeDir writes a bundle directory.
func makeDir(t testing.TB, manifest string, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "payloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, "payloads", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t testing.TB, dir string, workers int) (string, hashes.Digest) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.rugixb")
	d, err := Build(dir, out, BuildOptions{Workers: workers})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out, d
}

// readAll decodes every payload of a bundle file.
func readAll(t testing.TB, path string) (*Reader, [][]byte, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return nil, nil, err
	}
	var out [][]byte
	for {
		p, err := r.Next()
		if err == io.EOF {
			return r, out, nil
		}
		if err != nil {
			return r, out, err
		}
		var buf bytes.Buffer
		if _, err := p.Decode(&buf, DecodeOptions{}); err != nil {
			return r, out, err
		}
		out = append(out, buf.Bytes())
	}
}

func blockManifest(chunker, alg string, dedup bool, comp string) string {
	m := fmt.Sprintf(`update-type = "full"
hash-algorithm = %q

[[payloads]]
filename = "system.img"
[payloads.delivery]
type = "slot"
slot = "system"
[payloads.block-encoding]
chunker = %q
hash-algorithm = %q
deduplicate = %v
`, alg, chunker, alg, dedup)
	if comp != "" {
		m += fmt.Sprintf("compression = { type = %q, level = 1 }\n", comp)
	}
	m += `
[[payloads]]
filename = "script.sh"
[payloads.delivery]
type = "execute"
handler = ["/bin/sh", "-"]
`
	return m
}

// TestRoundTrip builds and reads back bundles for every combination of
// chunker, hash algorithm, deduplication and compression.
func TestRoundTrip(t *testing.T) {
	size := 3 << 20
	if testing.Short() {
		size = 600 << 10
	}
	// Leading zeros longer than two of the largest blocks: every chunker
	// sees repeated blocks.
	img := append(make([]byte, 600<<10), testPayload(size, 1)...)
	script := []byte("#!/bin/sh\necho hi\n")
	for _, ch := range []string{"fixed-4", "fixed-64", "casync-4", "casync-16", "casync-64"} {
		for _, alg := range []string{"sha256", "sha512-256", "sha512"} {
			for _, dedup := range []bool{false, true} {
				for _, comp := range []string{"", "xz", "zstd"} {
					name := fmt.Sprintf("%s/%s/dedup=%v/%s", ch, alg, dedup, comp)
					t.Run(name, func(t *testing.T) {
						if testing.Short() && alg == "sha512" && ch != "casync-16" {
							t.Skip("short")
						}
						dir := makeDir(t, blockManifest(ch, alg, dedup, comp), map[string][]byte{"system.img": img, "script.sh": script})
						path, d := build(t, dir, 2)
						r, got, err := readAll(t, path)
						if err != nil {
							t.Fatal(err)
						}
						if !r.HeaderHash.Equal(d) || r.HeaderHash.Alg.String() != alg {
							t.Fatalf("header hash %v, Build said %v", r.HeaderHash, d)
						}
						if len(got) != 2 || !bytes.Equal(got[0], img) || !bytes.Equal(got[1], script) {
							t.Fatal("decoded payloads differ from the input")
						}
						h := r.Header
						if h.Incremental || !h.HasManifest || h.Payloads[0].Slot != "system" || !h.Payloads[1].IsExecute ||
							strings.Join(h.Payloads[1].Execute, " ") != "/bin/sh -" {
							t.Fatalf("header %+v", h)
						}
						if (comp == "zstd") != (len(h.Requires) == 1 && h.Requires[0] == FeatureZstd) {
							t.Fatalf("requires %v with compression %q", h.Requires, comp)
						}
						checkTables(t, path, ch, dedup, comp)
					})
				}
			}
		}
	}
}

// checkTables reads the first payload header and checks the rules of the
// reference for BLOCK_SIZES (present iff not fixed or compressed) and
// deduplication.
func checkTables(t *testing.T, path, ch string, dedup bool, comp string) {
	t.Helper()
	f, _ := os.Open(path)
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	be := p.Header.Block
	wantSizes := !strings.HasPrefix(ch, "fixed") || comp != ""
	if (be.BlockSizes != nil) != wantSizes {
		t.Fatalf("block sizes present = %v, want %v", be.BlockSizes != nil, wantSizes)
	}
	if be.Deduplicated != dedup || be.Compression != comp || be.Chunker.String() != ch {
		t.Fatalf("block encoding %+v", be)
	}
	if dedup && p.Table.StoredBlocks() >= p.Table.Blocks() {
		t.Fatalf("dedup stored %d of %d blocks; the test data repeats blocks", p.Table.StoredBlocks(), p.Table.Blocks())
	}
	if !dedup && p.Table.StoredBlocks() != p.Table.Blocks() {
		t.Fatalf("without dedup stored %d of %d blocks", p.Table.StoredBlocks(), p.Table.Blocks())
	}
}

// TestDeterministic: the same directory gives the same bytes whatever the
// number of workers.
func TestDeterministic(t *testing.T) {
	img := testPayload(2<<20, 2)
	dir := makeDir(t, blockManifest("casync-16", "sha512-256", true, "xz"), map[string][]byte{"system.img": img, "script.sh": nil})
	a, _ := build(t, dir, 1)
	b, _ := build(t, dir, 4)
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if !bytes.Equal(x, y) {
		t.Fatal("bundles built with 1 and 4 workers differ")
	}
}

// storedBlocks returns the stored (encoded) blocks of the first payload.
func storedBlocks(t *testing.T, path string) ([][]byte, *Payload) {
	t.Helper()
	f, _ := os.Open(path)
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	be := p.Header.Block
	sizes := be.BlockSizes
	if be.Compression != "" {
		if sizes, err = blockenc.Decompress(be.Compression, be.BlockSizes, blockenc.MaxTable, nil); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, p.DataLen)
	sr := io.NewSectionReader(f, p.dataStart, int64(p.DataLen))
	if _, err := io.ReadFull(sr, data); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 0; i < len(sizes); i += 4 {
		n := binary.BigEndian.Uint32(sizes[i:])
		out = append(out, data[:n])
		data = data[n:]
	}
	return out, p
}

// TestXZBlocksDecodeWithRealXZ: every stored block, and the compressed
// tables, are complete .xz streams that the real xz accepts.
func TestXZBlocksDecodeWithRealXZ(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	img := testPayload(1<<20, 3)
	dir := makeDir(t, blockManifest("casync-16", "sha256", true, "xz"), map[string][]byte{"system.img": img, "script.sh": nil})
	path, _ := build(t, dir, 2)
	blocks, p := storedBlocks(t, path)
	var all []byte
	for i, b := range blocks {
		cmd := exec.Command("xz", "-d", "-c", "--single-stream")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz -d of block %d: %v", i, err)
		}
		all = append(all, out...)
	}
	if !bytes.Contains(img, all[:1000]) || len(blocks) == 0 {
		t.Fatal("decoded blocks do not come from the payload")
	}
	for _, table := range [][]byte{p.Header.Block.BlockHashes, p.Header.Block.BlockSizes} {
		cmd := exec.Command("xz", "-d", "-c")
		cmd.Stdin = bytes.NewReader(table)
		if _, err := cmd.Output(); err != nil {
			t.Fatalf("xz -d of a table: %v", err)
		}
	}
}

// TestDecodeBlocksFromRealXZ: blocks compressed by liblzma (what
// rugix-bundler writes, preset 6 with an 8 MiB dictionary) decode.
func TestDecodeBlocksFromRealXZ(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	img := testPayload(400<<10, 4)
	alg := hashes.SHA512_256
	xzc := func(b []byte, args ...string) []byte {
		cmd := exec.Command("xz", append([]string{"-c", "--check=crc64"}, args...)...)
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var data, sizes, hs []byte
	for off := 0; off < len(img); off += 64 << 10 {
		blk := img[off:min(off+64<<10, len(img))]
		c := xzc(blk, "-6")
		data = append(data, c...)
		sizes = binary.BigEndian.AppendUint32(sizes, uint32(len(c)))
		hs = append(hs, alg.Sum(blk)...)
	}
	tab, err := blockenc.NewTable(mustChunker(t, "fixed-64"), alg, false, "xz", xzc(hs, "-6"), xzc(sizes, "-9e"), uint64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := blockenc.Decode(bytes.NewReader(data), tab, &out, blockenc.DecodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), img) {
		t.Fatal("decoded data differs")
	}
}

// TestCorruptBlockRejected: a flipped byte in a stored block is reported
// with the block number and payload, and nothing from that block onwards
// reaches the output.
func TestCorruptBlockRejected(t *testing.T) {
	for _, comp := range []string{"", "xz", "zstd"} {
		t.Run("comp="+comp, func(t *testing.T) {
			img := testPayload(1<<20, 5)
			dir := makeDir(t, blockManifest("fixed-64", "sha512-256", false, comp), map[string][]byte{"system.img": img, "script.sh": nil})
			path, _ := build(t, dir, 2)
			blocks, p := storedBlocks(t, path)
			raw, _ := os.ReadFile(path)
			// Flip a byte in the middle of stored block 5.
			off := p.dataStart
			if comp == "" {
				off += 5*(64<<10) + 100
			} else {
				for _, b := range blocks[:5] {
					off += int64(len(b))
				}
				off += int64(len(blocks[5]) / 2)
			}
			raw[off] ^= 0x40
			os.WriteFile(path, raw, 0o644)
			f, _ := os.Open(path)
			defer f.Close()
			r, err := NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err = r.Next()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			_, err = p.Decode(&out, DecodeOptions{})
			if err == nil || !strings.HasPrefix(err.Error(), `block 5 of payload "system": `) {
				t.Fatalf("err = %v", err)
			}
			if out.Len() != 5*(64<<10) || !bytes.Equal(out.Bytes(), img[:out.Len()]) {
				t.Fatalf("%d bytes reached the output, want exactly the 5 good blocks", out.Len())
			}
		})
	}
}

func mustChunker(t *testing.T, s string) (c chunkerSpec) {
	t.Helper()
	c, err := parseChunker(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
