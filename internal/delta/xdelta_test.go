package delta

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/delta/deltatest"
)

func files(t *testing.T) (dir, old, new string, newData []byte) {
	dir = t.TempDir()
	rng := rand.New(rand.NewSource(1))
	a := make([]byte, 300<<10)
	rng.Read(a)
	b := bytes.Clone(a)
	copy(b[1000:], "changed")
	b = append(b, "appended"...)
	old, new = filepath.Join(dir, "old"), filepath.Join(dir, "new")
	os.WriteFile(old, a, 0o644)
	os.WriteFile(new, b, 0o644)
	return dir, old, new, b
}

func TestRoundTrip(t *testing.T) {
	deltatest.NeedXdelta(t)
	dir, old, new, want := files(t)
	patch := filepath.Join(dir, "patch")
	if err := Encode(old, new, patch); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(patch); fi.Size() > 10<<10 {
		t.Fatalf("patch is %d bytes", fi.Size())
	}
	p, _ := os.ReadFile(patch)
	var out bytes.Buffer
	d, err := NewDecoder(old, &out)
	if err != nil {
		t.Fatal(err)
	}
	for len(p) > 0 { // in small writes, as the block decoder hands them on
		n := min(len(p), 100)
		if _, err := d.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("decoded content differs")
	}
	// The patch file exists now: xdelta3 refuses to overwrite it.
	if err := Encode(old, new, patch); err == nil || !strings.Contains(err.Error(), "xdelta3 -e") {
		t.Fatalf("err = %v", err)
	}
}

func TestBadPatch(t *testing.T) {
	deltatest.NeedXdelta(t)
	_, old, _, _ := files(t)
	var out bytes.Buffer
	d, err := NewDecoder(old, &out)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte("not a vcdiff patch "), 10000)
	_, werr := d.Write(junk)
	cerr := d.Close()
	if cerr == nil {
		t.Fatal("junk patch accepted")
	}
	if werr != nil && !strings.Contains(werr.Error(), "xdelta3 -d") {
		t.Fatalf("write error %v", werr)
	}
	if werr == nil && !strings.Contains(cerr.Error(), "xdelta3 -d") {
		t.Fatalf("close error %v", cerr)
	}
}

func TestNotFound(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := NewDecoder("x", &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if err := Encode("a", "b", "c"); !errors.Is(err, ErrNotFound) || err.Error() != "xdelta3 not found: install it (Debian: apt-get install xdelta3)" {
		t.Fatalf("err = %v", err)
	}
}
