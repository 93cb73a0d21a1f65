package blockenc

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// TestRepeats decodes a deduplicated payload whose repeats come from the
// in-memory cache, from reading back the output, and from re-reading the
// payload data, and checks that a repeat that reads back wrong is caught.
func TestRepeats(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var data []byte
	blocks := make([][]byte, 5)
	for i := range blocks {
		blocks[i] = make([]byte, 4096)
		rng.Read(blocks[i])
	}
	for i := 0; i < 40; i++ {
		data = append(data, blocks[rng.Intn(len(blocks))]...)
	}
	spec, _ := chunker.Parse("fixed-4")
	o := Options{Chunker: spec, HashAlg: hashes.SHA256, Dedup: true, Compression: "zstd", Level: 3}
	var enc bytes.Buffer
	res, err := Encode(bytes.NewReader(data), o, &enc)
	if err != nil {
		t.Fatal(err)
	}
	bh, bs, _ := res.EncodeTable(o)
	tab, err := NewTable(spec, o.HashAlg, true, "zstd", bh, bs, uint64(enc.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if tab.StoredBlocks() != len(blocks) {
		t.Fatalf("%d stored blocks", tab.StoredBlocks())
	}
	defer func(c int) { repeatCache = c }(repeatCache)
	for _, cache := range []int{8 << 20, 0} {
		repeatCache = cache
		// Read back from the output.
		var out rwBuffer
		if _, err := Decode(bytes.NewReader(enc.Bytes()), tab, &out, DecodeOptions{Readback: &out}); err != nil || !bytes.Equal(out.b, data) {
			t.Fatalf("cache %d, readback: %v", cache, err)
		}
		// Re-read from the payload data.
		var out2 bytes.Buffer
		if _, err := Decode(bytes.NewReader(enc.Bytes()), tab, &out2, DecodeOptions{SourceAt: bytes.NewReader(enc.Bytes())}); err != nil || !bytes.Equal(out2.Bytes(), data) {
			t.Fatalf("cache %d, source: %v", cache, err)
		}
	}
	// Without the cache, an output that reads back wrong is caught.
	repeatCache = 0
	bad := &rwBuffer{lie: true}
	if _, err := Decode(bytes.NewReader(enc.Bytes()), tab, bad, DecodeOptions{Readback: bad}); err == nil {
		t.Fatal("a lying output was not noticed")
	}
}

// rwBuffer is an output that can be read back; lie flips what it returns.
type rwBuffer struct {
	b   []byte
	lie bool
}

func (w *rwBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *rwBuffer) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, w.b[off:])
	if w.lie {
		p[0] ^= 1
	}
	return n, nil
}
