package chunker

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCasyncCompat chunks the same data with the real casync binary and
// compares chunk end offsets and chunk IDs (SHA-512/256 of the chunk).
func TestCasyncCompat(t *testing.T) {
	if testing.Short() {
		t.Skip("needs casync and 32 MiB of data; skipped in -short mode")
	}
	casync, err := exec.LookPath("casync")
	if err != nil {
		t.Skip("casync not installed")
	}
	specs := []Spec{{Casync, 1}, {Casync, 4}, {Casync, 16}, {Casync, 64}, {Casync, 256}}
	data := testData(8, 32<<20, specs...)
	dir := t.TempDir()
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		t.Run(s.String(), func(t *testing.T) {
			lo, avg, hi := s.MinBlock(), s.avg(), s.MaxBlock()
			index := filepath.Join(dir, s.String()+".caibx")
			cmd := exec.Command(casync, "make", "--digest=sha512-256",
				"--store="+filepath.Join(dir, s.String()+".castr"),
				fmt.Sprintf("--chunk-size=%d:%d:%d", lo, avg, hi), index, file)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd, err, out)
			}
			want := readIndex(t, index, lo, avg, hi)

			var got []indexItem
			c := s.New(bytes.NewReader(data))
			var end uint64
			for {
				chunk, err := c.Next()
				if err != nil {
					break
				}
				end += uint64(len(chunk))
				got = append(got, indexItem{end, sha512.Sum512_256(chunk)})
			}
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("chunk %d: got end %d id %x, casync end %d id %x",
						i, got[i].end, got[i].id[:8], want[i].end, want[i].id[:8])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d chunks, casync %d", len(got), len(want))
			}
			sizes := make([]int, len(want))
			prev := uint64(0)
			for i, it := range want {
				sizes[i], prev = int(it.end-prev), it.end
			}
			checkHasMinMax(t, s, sizes)
			t.Logf("%d chunks identical", len(want))
		})
	}
}

type indexItem struct {
	end uint64 // end offset of the chunk in the stream
	id  [32]byte
}

// casync's caformat.h: an index file is a CaFormatIndex object
// {size, type, feature_flags, chunk_size_min, avg, max} (6 x le64), then a
// CaFormatTable header {size = UINT64_MAX, type}, then 40-byte items
// {le64 end offset, 32-byte chunk ID}, then a 40-byte tail that starts with
// a zero offset and ends with a marker.
const (
	caFormatIndex      = 0x96824d9c7b129ff9
	caFormatTable      = 0xe75b9e112f17417d
	caFormatTailMarker = 0x4b4f050e5549ecd1
	caFormatSHA512_256 = 0x2000000000000000
)

func readIndex(t *testing.T, name string, lo, avg, hi int) []indexItem {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	u := func(off int) uint64 {
		if off+8 > len(b) {
			t.Fatalf("%s: truncated at %d", name, off)
		}
		return le.Uint64(b[off:])
	}
	if u(0) != 48 || u(8) != caFormatIndex || u(16)&caFormatSHA512_256 == 0 {
		t.Fatalf("%s: bad index header", name)
	}
	if u(24) != uint64(lo) || u(32) != uint64(avg) || u(40) != uint64(hi) {
		t.Fatalf("%s: casync used sizes %d:%d:%d", name, u(24), u(32), u(40))
	}
	if u(48) != ^uint64(0) || u(56) != caFormatTable {
		t.Fatalf("%s: bad table header", name)
	}
	var items []indexItem
	off := 64
	for ; u(off) != 0; off += 40 {
		var it indexItem
		it.end = u(off)
		copy(it.id[:], b[off+8:off+40])
		items = append(items, it)
	}
	if u(off+32) != caFormatTailMarker || off+40 != len(b) {
		t.Fatalf("%s: bad table tail", name)
	}
	return items
}

// TestCasyncEmpty documents what casync does with empty input: an index
// without items, i.e. no chunk at all, which is what our chunkers emit too.
func TestCasyncEmpty(t *testing.T) {
	if testing.Short() {
		t.Skip("needs casync; skipped in -short mode")
	}
	casync, err := exec.LookPath("casync")
	if err != nil {
		t.Skip("casync not installed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "empty")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "e.caibx")
	lo, avg, hi := 16<<10, 64<<10, 256<<10
	cmd := exec.Command(casync, "make", "--store="+filepath.Join(dir, "s.castr"),
		fmt.Sprintf("--chunk-size=%d:%d:%d", lo, avg, hi), index, file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	if items := readIndex(t, index, lo, avg, hi); len(items) != 0 {
		t.Fatalf("casync made %d chunks of empty input", len(items))
	}
	for _, s := range []Spec{{Casync, 64}, {Fixed, 64}} {
		if sizes, err := Sizes(s, bytes.NewReader(nil)); len(sizes) != 0 || err != nil {
			t.Errorf("%v: %v, %v", s, sizes, err)
		}
	}
}
