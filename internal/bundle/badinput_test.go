package bundle

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/stlv"
)

// smallBundle is a bundle with block encoding, dedup and compression, small
// enough to cut at every byte.
func smallBundle(t testing.TB, comp string) []byte {
	img := testPayload(20<<10, 7)
	img = append(img, img...)
	m := blockManifest("casync-1", "sha512-256", true, comp)
	dir := makeDir(t, m, map[string][]byte{"system.img": img, "script.sh": []byte("echo\n")})
	path, _ := build(t, dir, 2)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeBytes reads a whole bundle from memory, like verify does.
func decodeBytes(b []byte) error {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	for {
		p, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := p.Decode(io.Discard, DecodeOptions{}); err != nil {
			return err
		}
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	for _, comp := range []string{"xz", ""} {
		b := smallBundle(t, comp)
		if err := decodeBytes(b); err != nil {
			t.Fatalf("intact bundle: %v", err)
		}
		step := 1
		if testing.Short() {
			step = 7
		}
		for n := 0; n < len(b); n += step {
			if err := decodeBytes(b[:n]); err == nil {
				t.Fatalf("bundle cut at %d of %d bytes accepted", n, len(b))
			}
		}
		if err := decodeBytes(append(b, 0)); err == nil || !strings.Contains(err.Error(), "trailing data") {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestFlippedBytesEverywhere(t *testing.T) {
	b := smallBundle(t, "xz")
	step := 3
	if testing.Short() {
		step = 29
	}
	for i := 0; i < len(b); i += step {
		c := append([]byte{}, b...)
		c[i] ^= 0x01
		err := decodeBytes(c)
		if err == nil {
			// Only the manifest JSON is not covered by anything but the
			// header hash, which this test does not pin; every other byte
			// is covered by a hash or the structure.
			r, _ := NewReader(bytes.NewReader(c))
			if r == nil || r.HeaderHash.Equal(mustHeaderHash(t, b)) {
				t.Fatalf("flipped byte %d accepted", i)
			}
		}
	}
}

func mustHeaderHash(t *testing.T, b []byte) (d hashDigest) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return r.HeaderHash
}

func TestNotABundle(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("hello world, not a bundle"), Magic[:9]} {
		if _, err := NewReader(bytes.NewReader(b)); err != ErrNotBundle {
			t.Errorf("%q: %v", b, err)
		}
	}
}

// withHeader rebuilds the example bundle with a modified header tree.
func exampleWith(t *testing.T, edit func(h *stlv.Node)) error {
	b := smallBundle(t, "")
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	n, err := stlv.Parse(r.HeaderRaw)
	if err != nil {
		t.Fatal(err)
	}
	edit(n)
	nh := n.Encode(nil)
	c := append(append(append([]byte{}, b[:5]...), nh...), b[5+len(r.HeaderRaw):]...)
	return decodeBytes(c)
}

func TestUnknownTags(t *testing.T) {
	// An unknown optional atom is skipped.
	err := exampleWith(t, func(h *stlv.Node) {
		h.Children = append(h.Children, &stlv.Node{Tag: 0x8abcdef0, Kind: stlv.Value, Value: []byte("x")},
			&stlv.Node{Tag: 0x8abcdef1, Kind: stlv.Start, Children: []*stlv.Node{{Tag: 0x1234, Kind: stlv.Value}}})
		h.Children[3].Children = append(h.Children[3].Children, &stlv.Node{Tag: 0x80000001, Kind: stlv.Value})
	})
	if err != nil {
		t.Fatalf("unknown optional atoms: %v", err)
	}
	// An unknown required one is rejected, naming the tag.
	err = exampleWith(t, func(h *stlv.Node) {
		h.Children = append(h.Children, &stlv.Node{Tag: 0x0abcdef0, Kind: stlv.Value})
	})
	if err == nil || !strings.Contains(err.Error(), "unknown required tag 0abcdef0") {
		t.Fatalf("unknown required atom: %v", err)
	}
	// Field order does not matter.
	err = exampleWith(t, func(h *stlv.Node) {
		c := h.Children
		c[0], c[1], c[2] = c[2], c[0], c[1]
		e := c[3].Children
		for i, j := 0, len(e)-1; i < j; i, j = i+1, j-1 {
			e[i], e[j] = e[j], e[i]
		}
	})
	if err != nil {
		t.Fatalf("reordered fields: %v", err)
	}
	// A repeated scalar is an error.
	err = exampleWith(t, func(h *stlv.Node) { h.Children = append(h.Children, h.Children[1]) })
	if err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Fatalf("repeated scalar: %v", err)
	}
	// A missing required field is an error.
	err = exampleWith(t, func(h *stlv.Node) { h.Children = h.Children[2:] })
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing field: %v", err)
	}
	// A bad boolean is an error.
	err = exampleWith(t, func(h *stlv.Node) { h.Children[1].Value = []byte{2} })
	if err == nil || !strings.Contains(err.Error(), "boolean") {
		t.Fatalf("bad bool: %v", err)
	}
	// An unknown feature requirement is refused.
	err = exampleWith(t, func(h *stlv.Node) {
		h.Children = append(h.Children, &stlv.Node{Tag: TagHeaderRequires, Kind: stlv.Value, Value: []byte("teleport")})
	})
	if err == nil || !strings.Contains(err.Error(), `requires feature "teleport"`) {
		t.Fatalf("unknown feature: %v", err)
	}
}

// TestZstdUnreadableByRugix: a zstd bundle carries a *required* tag that the
// Rugix reader does not know, so it stops at the header; and its payload
// header names a compression Rugix cannot parse.
func TestZstdUnreadableByRugix(t *testing.T) {
	if TagHeaderRequires.Optional() {
		t.Fatal("the requires tag must be required")
	}
	if _, known := rugixTags[TagHeaderRequires]; known {
		t.Fatal("tag collides with a Rugix tag")
	}
	b := smallBundle(t, "zstd")
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := stlv.Parse(r.HeaderRaw)
	found := false
	for _, c := range n.Children {
		if c.Tag == TagHeaderRequires && string(c.Value) == FeatureZstd {
			found = true
		}
		if _, known := rugixTags[c.Tag]; !known && !c.Tag.Optional() && c.Tag != TagHeaderRequires {
			t.Fatalf("unexpected tag %s", c.Tag)
		}
	}
	if !found {
		t.Fatal("zstd bundle lacks the requires tag")
	}
	// A reader with Rugix's knowledge rejects the header.
	err = decodeStruct(n, "bundle header", rugixHeaderFields())
	if err == nil || !strings.Contains(err.Error(), "unknown required tag") {
		t.Fatalf("Rugix-like reader: %v", err)
	}
}

// rugixTags are the tags Rugix 0.8 knows.
var rugixTags = func() map[stlv.Tag]bool {
	m := map[stlv.Tag]bool{}
	for t := range tagNames {
		if t != TagHeaderRequires {
			m[t] = true
		}
	}
	return m
}()

func rugixHeaderFields() []field {
	ok := func(*stlv.Node) error { return nil }
	return []field{
		{tag: TagHeaderManifest, handle: ok},
		{tag: TagHeaderIsIncremental, required: true, handle: ok},
		{tag: TagHeaderHashAlgorithm, required: true, handle: ok},
		{tag: TagHeaderPayloadIndex, repeated: true, segment: true, handle: ok},
	}
}

func TestHostileTables(t *testing.T) {
	b := smallBundle(t, "")
	r, _ := NewReader(bytes.NewReader(b))
	p, _ := r.Next()
	raw := p.HeaderRaw
	// Rebuild the payload header with inconsistent sizes and patch both the
	// payload header and its hash in the bundle header.
	for name, edit := range map[string]func(be *BlockEncoding){
		"sizes sum":      func(be *BlockEncoding) { be.BlockSizes[3]++ },
		"sizes count":    func(be *BlockEncoding) { be.BlockSizes = be.BlockSizes[4:] },
		"hash length":    func(be *BlockEncoding) { be.BlockHashes = be.BlockHashes[1:] },
		"zero size":      func(be *BlockEncoding) { copy(be.BlockSizes, []byte{0, 0, 0, 0}) },
		"huge size":      func(be *BlockEncoding) { copy(be.BlockSizes, []byte{0x7f, 0, 0, 0}) },
		"no sizes":       func(be *BlockEncoding) { be.BlockSizes = nil },
		"bad xz table":   func(be *BlockEncoding) { be.Compression = "xz" },
		"bad zstd table": func(be *BlockEncoding) { be.Compression = "zstd" },
	} {
		ph, err := DecodePayloadHeader(raw, "x")
		if err != nil {
			t.Fatal(err)
		}
		be := ph.Block
		be.BlockSizes = append([]byte{}, be.BlockSizes...)
		edit(be)
		nph := EncodePayloadHeader(ph)
		h := *r.Header
		h.Payloads = append([]PayloadEntry{}, h.Payloads...)
		h.Payloads[0].HeaderHash = h.HashAlg.Sum(nph)
		nh := EncodeHeader(&h)
		i := bytes.Index(b, raw)
		c := append([]byte{}, b[:5]...)
		c = append(c, nh...)
		c = append(c, b[5+len(r.HeaderRaw):i]...)
		c = append(c, nph...)
		c = append(c, b[i+len(raw):]...)
		if err := decodeBytes(c); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), `payload "system": `) {
			t.Errorf("%s: error does not name the payload: %v", name, err)
		}
	}
}
