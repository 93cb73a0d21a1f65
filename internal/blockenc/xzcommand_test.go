package blockenc

import (
	"bytes"
	"encoding/hex"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// With XZCommand the stored blocks are liblzma's: byte for byte the chunk
// files casync writes for the same data with the same chunk sizes (casync
// compresses each chunk with liblzma preset 6, as rugix-bundler does), and
// they decode with the built-in decoder.
func TestXZCommandMatchesCasync(t *testing.T) {
	if testing.Short() {
		t.Skip("runs xz once per block; skipped in -short mode")
	}
	xz, err := exec.LookPath("xz")
	if err != nil {
		t.Skip("xz not installed")
	}
	casync, err := exec.LookPath("casync")
	if err != nil {
		t.Skip("casync not installed")
	}
	// Text-like data, so that compression has something to do.
	rng := rand.New(rand.NewSource(7))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 2+rng.Intn(10))
		for j := range w {
			w[j] = byte('a' + rng.Intn(26))
		}
		words[i] = w
	}
	var data []byte
	for len(data) < 3<<20 {
		data = append(data, words[rng.Intn(len(words))]...)
		data = append(data, ' ')
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "s.castr")
	cmd := exec.Command(casync, "make", "--digest=sha512-256", "--compression=xz", "--store="+store,
		"--chunk-size=16384:65536:262144", filepath.Join(dir, "i.caibx"), file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}

	o := Options{Chunker: chunker.Spec{Kind: chunker.Casync, KiB: 64}, HashAlg: hashes.SHA512_256, Dedup: true,
		Compression: "xz", Level: 6, XZCommand: xz}
	var out bytes.Buffer
	res, err := Encode(bytes.NewReader(data), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.StoredSizes) < 10 {
		t.Fatalf("only %d stored blocks", len(res.StoredSizes))
	}
	stored := out.Bytes()
	hl := o.HashAlg.Size()
	seen := map[string]bool{}
	k := 0
	for i := 0; i < res.Blocks; i++ {
		id := hex.EncodeToString(res.Hashes[i*hl : (i+1)*hl])
		if seen[id] {
			continue
		}
		seen[id] = true
		blk := stored[:res.StoredSizes[k]]
		stored = stored[res.StoredSizes[k]:]
		k++
		want, err := os.ReadFile(filepath.Join(store, id[:4], id+".cacnk"))
		if err != nil {
			t.Fatalf("block %d: casync has no chunk %s: %v", i, id[:16], err)
		}
		if !bytes.Equal(blk, want) {
			t.Fatalf("block %d (%s): %d bytes from xz, casync's chunk has %d", i, id[:16], len(blk), len(want))
		}
		if _, err := Decompress("xz", blk, 1<<20, nil); err != nil {
			t.Fatalf("block %d: built-in decoder: %v", i, err)
		}
	}
}
