package stlv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzCorpus regenerates the committed seed corpus of FuzzReader:
// BASCULE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./internal/stlv
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("BASCULE_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set BASCULE_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	os.MkdirAll(dir, 0o755)
	long := Builder{}
	long.Start(0xa83936f1)
	long.Bytes(0x9795498f, make([]byte, 300))
	long.End(0xa83936f1)
	for name, b := range map[string][]byte{
		"struct":   sample(),
		"nested":   nested(MaxDepth),
		"varint":   long.B,
		"optional": append(AppendHead(nil, Head{Tag: 0x80000001, Kind: Value, Len: 2}), 1, 2),
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644)
	}
}
