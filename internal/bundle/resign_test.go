package bundle

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/stlv"
)

// resignBundle writes a bundle with two payloads (one of a few megabytes)
// and the given bytes between header and payloads.
func resignBundle(t *testing.T, between []byte) ([]byte, [][]byte) {
	t.Helper()
	alg := hashes.SHA512_256
	big := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(big)
	files := [][]byte{[]byte("small payload\n"), big}
	ph := EncodePayloadHeader(&PayloadHeader{})
	h := &Header{Incremental: true, HashAlg: alg}
	var pds []PayloadData
	for i, f := range files {
		h.Payloads = append(h.Payloads, PayloadEntry{Slot: []string{"a", "b"}[i], HeaderHash: alg.Sum(ph), FileHash: alg.Sum(f)})
		pds = append(pds, PayloadData{Header: ph, Data: bytes.NewReader(f), Size: int64(len(f))})
	}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, EncodeHeader(h), between, pds); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), files
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkBundle reads a bundle completely, decoding every payload.
func checkBundle(t *testing.T, b []byte, files [][]byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := p.Decode(&out, DecodeOptions{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), files[i]) {
			t.Fatalf("payload %d differs", i)
		}
	}
	// Re-read for the caller: the reader above is at the end.
	r, _ = NewReader(bytes.NewReader(b))
	return r
}

func optionalAtom() []byte {
	var b stlv.Builder
	b.Start(0x8abc_def0)
	b.Bytes(0x8abc_def1, []byte("keep me"))
	b.End(0x8abc_def0)
	return b.B
}

func TestResignAddReplaceRemove(t *testing.T) {
	plain, files := resignBundle(t, nil)
	in := writeTemp(t, "in.rugixb", plain)
	dir := filepath.Dir(in)
	out := filepath.Join(dir, "out.rugixb")

	// Add two signatures.
	sigs := [][]byte{[]byte("first signature"), bytes.Repeat([]byte{0x42}, 300)}
	if err := Resign(in, out, func(r *Reader) ([][]byte, error) { return append(r.Signatures, sigs...), nil }); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r := checkBundle(t, got, files)
	if len(r.Signatures) != 2 || !bytes.Equal(r.Signatures[1], sigs[1]) {
		t.Fatalf("signatures: %q", r.Signatures)
	}
	pin, _ := NewReader(bytes.NewReader(plain))
	if !bytes.Equal(r.HeaderRaw, pin.HeaderRaw) || !r.HeaderHash.Equal(pin.HeaderHash) {
		t.Fatal("header changed")
	}
	if !bytes.Equal(got[r.PayloadsOffset():], plain[pin.PayloadsOffset():]) {
		t.Fatal("payloads not copied byte for byte")
	}

	// Add a third to the signed bundle, in place.
	if err := Resign(out, out, func(r *Reader) ([][]byte, error) { return append(r.Signatures, []byte("third")), nil }); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(out)
	if r := checkBundle(t, got, files); len(r.Signatures) != 3 || string(r.Signatures[0]) != "first signature" {
		t.Fatalf("signatures after in-place add: %q", r.Signatures)
	}

	// Removing every signature gives back the unsigned bundle exactly.
	if err := Resign(out, out, func(*Reader) ([][]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(out)
	if !bytes.Equal(got, plain) {
		t.Fatal("unsigned bundle differs from the original")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestResignKeepsOtherOptionalAtoms(t *testing.T) {
	extra := optionalAtom()
	b, files := resignBundle(t, append(EncodeSignatures([][]byte{[]byte("old")}), extra...))
	in := writeTemp(t, "in.rugixb", b)
	out := in + ".new"
	if err := Resign(in, out, func(r *Reader) ([][]byte, error) {
		if len(r.Signatures) != 1 {
			t.Errorf("update saw %d signatures", len(r.Signatures))
		}
		return append(r.Signatures, []byte("new")), nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	r := checkBundle(t, got, files)
	if len(r.Signatures) != 2 {
		t.Fatalf("signatures: %q", r.Signatures)
	}
	between := got[5+len(r.HeaderRaw) : r.PayloadsOffset()]
	want := append(EncodeSignatures([][]byte{[]byte("old"), []byte("new")}), extra...)
	if !bytes.Equal(between, want) {
		t.Fatalf("between header and payloads:\n got %x\nwant %x", between, want)
	}
}

func TestResignUnchangedIsIdentical(t *testing.T) {
	b, _ := resignBundle(t, EncodeSignatures([][]byte{[]byte("a"), []byte("b")}))
	in := writeTemp(t, "in.rugixb", b)
	if err := Resign(in, in+".2", func(r *Reader) ([][]byte, error) { return r.Signatures, nil }); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(in + ".2")
	if !bytes.Equal(got, b) {
		t.Fatal("resigning with the same signatures changed the bundle")
	}
}

func TestResignFailuresLeaveNoOutput(t *testing.T) {
	b, _ := resignBundle(t, nil)
	in := writeTemp(t, "in.rugixb", b)
	dir := filepath.Dir(in)
	out := filepath.Join(dir, "out.rugixb")
	boom := errors.New("boom")
	if err := Resign(in, out, func(*Reader) ([][]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	notBundle := writeTemp(t, "x", []byte("not a bundle at all"))
	if err := Resign(notBundle, out, func(*Reader) ([][]byte, error) { return nil, nil }); !errors.Is(err, ErrNotBundle) {
		t.Fatalf("err = %v", err)
	}
	// A truncated bundle is refused once the copy runs short or the header
	// cannot be read.
	if err := Resign(writeTemp(t, "t", b[:100]), out, func(*Reader) ([][]byte, error) { return nil, nil }); err == nil {
		t.Fatal("truncated bundle accepted")
	}
	// Renaming over something that is not a regular file would replace it.
	if err := Resign(in, t.TempDir(), func(*Reader) ([][]byte, error) { return nil, nil }); err == nil {
		t.Fatal("replaced a directory")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output exists after failures: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestResignSegmentLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates more than 32 MiB")
	}
	b, _ := resignBundle(t, nil)
	in := writeTemp(t, "in.rugixb", b)
	huge := make([]byte, MaxSignatures)
	err := Resign(in, in+".out", func(*Reader) ([][]byte, error) { return [][]byte{huge}, nil })
	if err == nil {
		t.Fatal("oversized signatures segment written")
	}
}
