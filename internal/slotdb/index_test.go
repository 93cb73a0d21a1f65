package slotdb

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

func spec(t *testing.T, s string) chunker.Spec {
	t.Helper()
	c, err := chunker.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomData(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// The file layout is checked byte for byte against the tag table of the
// reference (§6.2), written out here rather than taken from the bundle
// package, with a hash field long enough to need the varint length form.
func TestIndexFileLayout(t *testing.T) {
	data := randomData(4*1024+10, 1)
	ix, err := CreateIndex(bytes.NewReader(data), spec(t, "fixed-1"), hashes.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var sums []byte
	for off := 0; off < len(data); off += 1024 {
		s := sha256.Sum256(data[off:min(off+1024, len(data))])
		sums = append(sums, s[:]...)
	}
	var want []byte
	add := func(h string, b ...byte) {
		x, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		want = append(append(want, x...), b...)
	}
	add("1ae50c8e 40")                                              // BLOCK_INDEX start
	add("5cdf21b0 87", []byte("fixed-1")...)                        // BLOCK_INDEX_CHUNKER, 7 bytes
	add("1d92a080 86", []byte("sha256")...)                         // BLOCK_INDEX_HASH_ALGORITHM, 6 bytes
	add("55e547d8 ff 21", sums...)                                  // BLOCK_INDEX_BLOCK_HASHES, 127+33 = 160 bytes
	add("4668c5ba 94 00000400 00000400 00000400 00000400 0000000a") // BLOCK_INDEX_BLOCK_SIZES, u32 BE
	add("1ae50c8e 00")                                              // BLOCK_INDEX end
	if got := ix.Encode(); !bytes.Equal(got, want) {
		t.Errorf("encoding:\n%x\nwant:\n%x", got, want)
	}
	if ix.FileName() != "fixed-1_sha256.rugix-block-index" {
		t.Errorf("file name %s", ix.FileName())
	}
}

func TestIndexRoundTrip(t *testing.T) {
	data := randomData(3<<20, 2)
	for _, tc := range []struct {
		chunker string
		alg     hashes.Algorithm
	}{
		{"casync-64", hashes.SHA512_256},
		{"fixed-4", hashes.SHA512},
	} {
		t.Run(tc.chunker, func(t *testing.T) {
			sp := spec(t, tc.chunker)
			ix, err := CreateIndex(bytes.NewReader(data), sp, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			sizes, err := chunker.Sizes(sp, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if ix.Len() != len(sizes) {
				t.Fatalf("%d blocks, chunker cuts %d", ix.Len(), len(sizes))
			}
			offs := ix.Offsets()
			for i, s := range sizes {
				if int(ix.Sizes[i]) != s {
					t.Fatalf("block %d: size %d, want %d", i, ix.Sizes[i], s)
				}
				block := data[offs[i] : offs[i]+uint64(s)]
				if !bytes.Equal(ix.Hash(i), tc.alg.Sum(block)) {
					t.Fatalf("block %d: wrong hash", i)
				}
			}
			if last := offs[len(offs)-1] + uint64(ix.Sizes[len(offs)-1]); last != uint64(len(data)) {
				t.Fatalf("blocks cover %d bytes of %d", last, len(data))
			}

			db := New(t.TempDir())
			path, err := db.AddIndex("system-a", bytes.NewReader(data), sp, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			wantName := tc.chunker + "_" + tc.alg.String() + ".rugix-block-index"
			if filepath.Base(path) != wantName {
				t.Errorf("index file %s, want %s", path, wantName)
			}
			back, err := ReadIndex(path)
			if err != nil {
				t.Fatal(err)
			}
			if back.Chunker != ix.Chunker || back.HashAlg != ix.HashAlg ||
				!bytes.Equal(back.Hashes, ix.Hashes) || len(back.Sizes) != len(ix.Sizes) {
				t.Fatal("index changed in the round trip")
			}
			for i := range ix.Sizes {
				if back.Sizes[i] != ix.Sizes[i] {
					t.Fatalf("size %d changed", i)
				}
			}
		})
	}
}

func TestEmptyIndex(t *testing.T) {
	ix, err := CreateIndex(bytes.NewReader(nil), spec(t, "casync-64"), hashes.SHA512_256)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeIndex(ix.Encode())
	if err != nil || back.Len() != 0 {
		t.Fatalf("empty index: %+v, %v", back, err)
	}
}

func TestListIndices(t *testing.T) {
	db := New(t.TempDir())
	if files, err := db.ListIndices("system-a"); files != nil || err != nil {
		t.Fatalf("slot without directory: %v, %v", files, err)
	}
	data := randomData(100000, 3)
	db.AddIndex("system-a", bytes.NewReader(data), spec(t, "fixed-64"), hashes.SHA256)
	db.AddIndex("system-a", bytes.NewReader(data), spec(t, "casync-64"), hashes.SHA512_256)
	dir, _ := db.Dir("system-a")
	for _, junk := range []string{
		"state.json",
		"casync-64_sha512-256.rugix-block-index.tmp", // interrupted write
		"nounderscore.rugix-block-index",
		"bogus-1_sha256.rugix-block-index",
		"fixed-1_md5.rugix-block-index",
	} {
		os.WriteFile(filepath.Join(dir, junk), []byte("x"), 0o644)
	}
	// Rugix parses "<chunker>_<alg>" at the first '_', so the underscore
	// spelling of the algorithm is an index too.
	os.WriteFile(filepath.Join(dir, "fixed-2_sha512_256.rugix-block-index"), []byte("x"), 0o644)
	files, err := db.ListIndices("system-a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Chunker.String()+" "+f.HashAlg.String()+" "+filepath.Base(f.Path))
	}
	want := []string{
		"casync-64 sha512-256 casync-64_sha512-256.rugix-block-index",
		"fixed-2 sha512-256 fixed-2_sha512_256.rugix-block-index",
		"fixed-64 sha256 fixed-64_sha256.rugix-block-index",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("indices:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDecodeIndexErrors(t *testing.T) {
	good, err := CreateIndex(bytes.NewReader(randomData(5000, 4)), spec(t, "fixed-1"), hashes.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	enc := good.Encode()
	cases := map[string][]byte{
		"truncated":       enc[:len(enc)-1],
		"wrong root":      append([]byte{0x6b, 0x50, 0x74, 0x1c, 0x40}, append(enc[5:len(enc)-5], 0x6b, 0x50, 0x74, 0x1c, 0x00)...),
		"hashes mismatch": (&Index{Chunker: good.Chunker, HashAlg: good.HashAlg, Sizes: []uint32{1}}).Encode(),
	}
	// Drop the sizes' last byte: the length is no longer a multiple of 4.
	odd := append([]byte{}, enc...)
	i := bytes.Index(odd, []byte{0x46, 0x68, 0xc5, 0xba})
	odd[i+4]--
	odd = append(odd[:len(odd)-6], odd[len(odd)-5:]...)
	cases["odd sizes"] = odd
	for name, b := range cases {
		if _, err := DecodeIndex(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDecodeIndexSkipsOptional(t *testing.T) {
	ix, _ := CreateIndex(bytes.NewReader(randomData(3000, 5)), spec(t, "fixed-1"), hashes.SHA256)
	enc := ix.Encode()
	// Insert an unknown optional value (tag with bit 31 set) after the start.
	ext := append(append(append([]byte{}, enc[:5]...), 0x80, 0, 0, 1, 0x81, 0xaa), enc[5:]...)
	back, err := DecodeIndex(ext)
	if err != nil || back.Len() != ix.Len() {
		t.Fatalf("optional field: %v", err)
	}
	// The same tag without the optional bit is an error.
	ext[5] = 0x00
	if _, err := DecodeIndex(ext); err == nil {
		t.Fatal("unknown required field accepted")
	}
}
