package bundle

import (
	"bytes"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/hashes"
)

// unhex decodes hex with spaces and newlines.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkedExample checks the bytes and the header hash of the worked
// example of the compatibility reference (§6.4): one slot payload "hello\n"
// for slot "test", incremental, sha512-256, no block encoding, no manifest.
func TestWorkedExample(t *testing.T) {
	alg := hashes.SHA512_256
	ph := EncodePayloadHeader(&PayloadHeader{})
	if want := unhex(t, "09 59 ca 75 40 09 59 ca 75 00"); !bytes.Equal(ph, want) {
		t.Fatalf("empty payload header = %x, want %x", ph, want)
	}
	data := []byte("hello\n")
	h := &Header{Incremental: true, HashAlg: alg, Payloads: []PayloadEntry{{
		Slot: "test", HeaderHash: alg.Sum(ph), FileHash: alg.Sum(data),
	}}}
	header := EncodeHeader(h)
	var out bytes.Buffer
	if err := WriteBundle(&out, header, nil, []PayloadData{{Header: ph, Data: bytes.NewReader(data), Size: int64(len(data))}}); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()

	want := unhex(t, `6b 50 74 1c 40 49 af 64 33 40 20 f3 d1 6b 81 01
		5c b8 0d d6 8a 73 68 61 35 31 32 2d 32 35 36 13
		73 79 92 40 45 ca 7e 7e 40 1b 23 1d e7 84 74 65
		73 74 45 ca 7e 7e 00 5f 6a 60 b1 a0`)
	want = append(want, alg.Sum(ph)...)
	want = append(want, unhex(t, "0c 8d 1f d0 a0")...)
	want = append(want, alg.Sum(data)...)
	want = append(want, unhex(t, `13 73 79 92 00 49 af 64 33 00
		01 f3 8f ba 40 49 0c af af 40 09 59 ca 75 40 09 59 ca 75 00
		42 fd 64 1a 86 68 65 6c 6c 6f 0a 49 0c af af 00 01 f3 8f ba 00 6b 50 74 1c 00`)...)
	if !bytes.Equal(b, want) {
		t.Fatalf("bundle bytes differ:\n got %x\nwant %x", b, want)
	}
	const wantHash = "sha512-256:2c272e573183573b401135791f32363bafd99f8e473f17f2ff2356859691fd18"
	if got := (hashes.Digest{Alg: alg, Sum: alg.Sum(header)}).String(); got != wantHash {
		t.Fatalf("header hash %s, want %s", got, wantHash)
	}

	// And the reader understands it.
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.HeaderHash.String() != wantHash || !bytes.Equal(r.HeaderRaw, header) {
		t.Fatalf("reader header hash %s", r.HeaderHash)
	}
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := p.Decode(&got, DecodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if got.String() != "hello\n" {
		t.Fatalf("payload %q", got.String())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last payload: %v", err)
	}

	// The signed metadata of the reference's §6.5.
	sm := EncodeSignedMetadata(r.HeaderHash)
	wantSM := append(unhex(t, "61 d0 87 1e 40 1f 99 2d fc cb"), wantHash...)
	wantSM = append(wantSM, unhex(t, "61 d0 87 1e 00")...)
	if !bytes.Equal(sm, wantSM) {
		t.Fatalf("signed metadata %x, want %x", sm, wantSM)
	}
	if d, err := DecodeSignedMetadata(sm); err != nil || !d.Equal(r.HeaderHash) {
		t.Fatalf("DecodeSignedMetadata: %v %v", d, err)
	}
}
