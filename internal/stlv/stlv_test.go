package stlv

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestVarintExamples(t *testing.T) {
	for _, c := range []struct {
		v   uint64
		enc []byte
	}{
		{0, []byte{0x00}}, {127, []byte{0x7f}}, {128, []byte{0x81, 0x00}}, {300, []byte{0x82, 0x2c}},
		{MaxLen, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	} {
		if got := AppendVarint(nil, c.v); !bytes.Equal(got, c.enc) {
			t.Errorf("AppendVarint(%d) = %x, want %x", c.v, got, c.enc)
		}
		v, n, err := DecodeVarint(c.enc)
		if err != nil || v != c.v || n != len(c.enc) {
			t.Errorf("DecodeVarint(%x) = %d, %d, %v", c.enc, v, n, err)
		}
	}
}

func TestVarintRejects(t *testing.T) {
	for _, enc := range [][]byte{
		{0x80, 0x00},                   // leading zero digit
		bytes.Repeat([]byte{0xff}, 10), // more than 63 bits
		{0x81},                         // truncated
		{0xc0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, // 64 bits
	} {
		if _, _, err := DecodeVarint(enc); err == nil {
			t.Errorf("DecodeVarint(%x) succeeded", enc)
		}
	}
}

func TestHeadRoundTrip(t *testing.T) {
	heads := []Head{
		{Tag: 0x6b50741c, Kind: Start}, {Tag: 0x6b50741c, Kind: End},
		{Tag: 0x80000001, Kind: Value, Len: 0}, {Tag: 1, Kind: Value, Len: 126},
		{Tag: 2, Kind: Value, Len: 127}, {Tag: 3, Kind: Value, Len: 128},
		{Tag: 4, Kind: Value, Len: 127 + 300}, {Tag: 5, Kind: Value, Len: 5 << 30},
		{Tag: 6, Kind: Value, Len: MaxLen},
	}
	for _, h := range heads {
		b := AppendHead(nil, h)
		if len(b) != HeadSize(h) {
			t.Errorf("%+v: HeadSize %d, encoded %d bytes", h, HeadSize(h), len(b))
		}
		got, err := NewReader(bytes.NewReader(b)).Head()
		if err != nil || got != h {
			t.Errorf("round trip of %+v: got %+v, %v", h, got, err)
		}
	}
	// The reference's example: length 127 is written as ff 00.
	if b := AppendHead(nil, Head{Tag: 2, Kind: Value, Len: 127}); !bytes.Equal(b[4:], []byte{0xff, 0x00}) {
		t.Errorf("length 127 encoded as %x", b[4:])
	}
}

func TestBadIndicator(t *testing.T) {
	for _, ind := range []byte{0x41, 0x01, 0x20, 0x7f} {
		_, err := NewReader(bytes.NewReader([]byte{1, 2, 3, 4, ind})).Head()
		if !errors.Is(err, ErrIndicator) {
			t.Errorf("indicator %#x: err = %v", ind, err)
		}
	}
}

func TestOptionalBit(t *testing.T) {
	if Tag(0x7fffffff).Optional() || !Tag(0x80000000).Optional() || !Tag(0xa83936f1).Optional() {
		t.Fatal("optional bit misread")
	}
}

func sample() []byte {
	var b Builder
	b.Start(0x10)
	b.String(0x11, "hello")
	b.Start(0x12)
	b.Bytes(0x13, bytes.Repeat([]byte{7}, 1000))
	b.Bool(0x14, true)
	b.End(0x12)
	b.End(0x10)
	return b.B
}

func TestParseEncode(t *testing.T) {
	raw := sample()
	n, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Children) != 2 || string(n.Children[0].Value) != "hello" || len(n.Children[1].Children[0].Value) != 1000 {
		t.Fatalf("unexpected tree %+v", n)
	}
	if got := n.Encode(nil); !bytes.Equal(got, raw) {
		t.Fatal("Encode(Parse(x)) != x")
	}
}

func TestParseErrors(t *testing.T) {
	raw := sample()
	cases := map[string][]byte{
		"truncated":    raw[:len(raw)-3],
		"trailing":     append(append([]byte{}, raw...), 0),
		"wrong end":    append(append([]byte{}, raw[:len(raw)-5]...), 0, 0, 0, 0x11, 0),
		"lone end":     {0, 0, 0, 0x10, 0},
		"empty":        {},
		"value cut":    raw[:12],
		"huge value":   {0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"unterminated": {0, 0, 0, 1, 0x40},
	}
	for name, b := range cases {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: Parse succeeded", name)
		}
	}
}

func nested(depth int) []byte {
	var b Builder
	for i := 0; i < depth; i++ {
		b.Start(Tag(i + 1))
	}
	for i := depth - 1; i >= 0; i-- {
		b.End(Tag(i + 1))
	}
	return b.B
}

func TestDepthLimit(t *testing.T) {
	if _, err := Parse(nested(MaxDepth)); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	if _, err := Parse(nested(MaxDepth + 1)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("depth %d: err = %v", MaxDepth+1, err)
	}
	r := NewReader(bytes.NewReader(nested(MaxDepth + 1)))
	h, _ := r.Head()
	if err := r.Skip(h); err == nil {
		t.Fatal("Skip accepted excessive nesting")
	}
	r = NewReader(bytes.NewReader(nested(MaxDepth + 1)))
	h, _ = r.Head()
	if _, err := r.Capture(h, 1<<20); err == nil {
		t.Fatal("Capture accepted excessive nesting")
	}
}

func TestSkipAndCapture(t *testing.T) {
	raw := sample()
	stream := append(append([]byte{}, raw...), AppendHead(nil, Head{Tag: 0x99, Kind: Value, Len: 3})...)
	stream = append(stream, 1, 2, 3)
	r := NewReader(bytes.NewReader(stream))
	h, _ := r.Head()
	if err := r.Skip(h); err != nil {
		t.Fatal(err)
	}
	if r.Offset() != int64(len(raw)) {
		t.Fatalf("offset after skip %d, want %d", r.Offset(), len(raw))
	}
	r = NewReader(bytes.NewReader(stream))
	h, _ = r.Head()
	got, err := r.Capture(h, len(raw))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("Capture: %v", err)
	}
	r = NewReader(bytes.NewReader(stream))
	h, _ = r.Head()
	if _, err := r.Capture(h, len(raw)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Capture over limit: %v", err)
	}
	h, err = NewReader(bytes.NewReader(nil)).Head()
	if err != io.EOF {
		t.Fatalf("empty stream: %v", err)
	}
}

// seekCounter is a seekable source; Discard must seek over long values
// rather than read them.
type seekCounter struct {
	*bytes.Reader
	read int
}

func (s *seekCounter) Read(p []byte) (int, error) {
	n, err := s.Reader.Read(p)
	s.read += n
	return n, err
}

func TestDiscardSeeks(t *testing.T) {
	var b Builder
	b.Bytes(1, make([]byte, 8<<20))
	b.String(2, "after")
	src := &seekCounter{Reader: bytes.NewReader(b.B)}
	r := NewReader(src)
	h, _ := r.Head()
	if err := r.Skip(h); err != nil {
		t.Fatal(err)
	}
	h, err := r.Head()
	if err != nil || h.Tag != 2 {
		t.Fatalf("after skip: %+v %v", h, err)
	}
	if v, _ := r.ReadValue(h, 10); string(v) != "after" {
		t.Fatalf("value after skip %q", v)
	}
	if src.read > 2<<20 {
		t.Fatalf("read %d bytes to skip an 8 MiB value", src.read)
	}
	// A skip beyond the end is an error, not a silent success.
	var c Builder
	c.B = AppendHead(nil, Head{Tag: 1, Kind: Value, Len: 8 << 20})
	c.B = append(c.B, make([]byte, 3<<20)...)
	r = NewReader(&seekCounter{Reader: bytes.NewReader(c.B)})
	h, _ = r.Head()
	if err := r.Skip(h); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("skip past end: %v", err)
	}
}

// FuzzReader feeds arbitrary bytes to every reading path: none may panic,
// and whatever Parse accepts must re-encode to the same bytes.
func FuzzReader(f *testing.F) {
	f.Add(sample())
	f.Add(nested(3))
	f.Add([]byte{0, 0, 0, 1, 0xff, 0x81, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := Parse(b); err == nil {
			if got := n.Encode(nil); !bytes.Equal(got, b) {
				// Non-canonical varints are rejected, so encoding is unique.
				t.Fatalf("re-encoding differs: %x vs %x", got, b)
			}
		}
		r := NewReader(bytes.NewReader(b))
		for i := 0; i < 64; i++ {
			h, err := r.Head()
			if err != nil {
				break
			}
			if h.Kind == End {
				continue
			}
			if i%2 == 0 {
				err = r.Skip(h)
			} else {
				_, err = r.Capture(h, 1<<16)
			}
			if err != nil {
				break
			}
		}
	})
}
