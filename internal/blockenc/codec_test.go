package blockenc

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"
)

func TestCompressRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("bascule block "), 5000)
	for _, kind := range []string{"xz", "zstd"} {
		c, err := Compress(kind, 3, data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decompress(kind, c, len(data), nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", kind, err)
		}
		// One byte more than the limit allows is refused, before the
		// output is produced (a compression bomb costs nothing).
		if _, err := Decompress(kind, c, len(data)-1, nil); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s over the limit: %v", kind, err)
		}
	}
}

// TestXZDictionaryFromIndex: a stream from the real xz that declares a
// 64 MiB dictionary (preset 9) decodes with a dictionary sized by the data.
func TestXZDictionaryFromIndex(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	data := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 10000)
	cmd := exec.Command("xz", "-9", "-c")
	cmd.Stdin = bytes.NewReader(data)
	c, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	m0 := heapAlloc()
	got, err := Decompress("xz", c, 1<<20, nil)
	m1 := heapAlloc()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decode: %v", err)
	}
	if m1-m0 > 16<<20 {
		t.Fatalf("decoding allocated %d MiB", (m1-m0)>>20)
	}
	for _, bad := range [][]byte{c[:len(c)-1], append(append([]byte{}, c...), 0, 0, 0, 0), nil} {
		if _, err := Decompress("xz", bad, 1<<20, nil); err == nil {
			t.Fatal("damaged stream accepted")
		}
	}
}
