package bundle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzBundleReader feeds arbitrary bytes through the whole reading path
// (header, signatures, payload headers, block tables, blocks). Nothing may
// panic or hang; the seed corpus in testdata/fuzz holds small valid bundles
// of each kind.
func FuzzBundleReader(f *testing.F) {
	f.Add(Magic)
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeBytes(b)
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus:
// BASCULE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./internal/bundle
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("BASCULE_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set BASCULE_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzBundleReader")
	os.MkdirAll(dir, 0o755)
	img := append(make([]byte, 5000), testPayload(6000, 9)...)
	for i, m := range []string{
		blockManifest("casync-1", "sha512-256", true, "xz"),
		blockManifest("fixed-1", "sha256", true, ""),
		blockManifest("casync-1", "sha512", false, "zstd"),
		"update-type = \"incremental\"\n[[payloads]]\nfilename = \"system.img\"\ndelivery = { type = \"slot\", slot = \"s\" }\n",
	} {
		d := makeDir(t, m, map[string][]byte{"system.img": img, "script.sh": []byte("echo\n")})
		path, _ := build(t, d, 1)
		b, _ := os.ReadFile(path)
		if err := decodeBytes(b); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "go test fuzz v1\n[]byte(%q)\n", b)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("bundle-%d", i)), buf.Bytes(), 0o644)
	}
}
