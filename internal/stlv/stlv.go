// Package stlv implements the Structured Tag-Length-Value encoding that
// Rugix bundles (and therefore Bascule bundles) are made of.
//
// A stream is a sequence of atoms: a 4-byte big-endian tag, an indicator
// byte and, for value atoms, a length and the value. Segment start and end
// atoms nest the stream into a tree. The most significant bit of a tag marks
// it optional: readers skip optional atoms they do not know and reject
// unknown required ones.
package stlv

import (
	"errors"
	"fmt"
	"io"
)

// Tag identifies an atom. Bit 31 set means the atom is optional.
type Tag uint32

// Optional reports whether a reader that does not know t may skip it.
func (t Tag) Optional() bool { return t&0x8000_0000 != 0 }

func (t Tag) String() string { return fmt.Sprintf("%08x", uint32(t)) }

// Kind is the kind of an atom.
type Kind uint8

const (
	Value Kind = iota // a value atom with a length and bytes
	Start             // a segment start
	End               // a segment end
)

func (k Kind) String() string {
	switch k {
	case Value:
		return "value"
	case Start:
		return "segment start"
	case End:
		return "segment end"
	}
	return "invalid"
}

// Head is an atom without its value.
type Head struct {
	Tag  Tag
	Kind Kind
	Len  uint64 // length of the value, only for Value
}

const (
	isValue = 0x80
	isStart = 0x40
	// inlineMax is the largest length stored in the indicator byte itself;
	// the value 127 announces a varint holding length-127.
	inlineMax = 127
	// MaxLen is the largest value length the varint can describe (63 bits).
	MaxLen = 1<<63 - 1
)

// Errors returned by the codec. They are wrapped with the position.
var (
	ErrVarint    = errors.New("invalid varint")
	ErrIndicator = errors.New("invalid indicator byte")
)

// HeadSize is the encoded size of h.
func HeadSize(h Head) int {
	if h.Kind != Value || h.Len < inlineMax {
		return 5
	}
	return 5 + varintSize(h.Len-inlineMax)
}

// AppendHead appends the encoding of h to b.
func AppendHead(b []byte, h Head) []byte {
	b = append(b, byte(h.Tag>>24), byte(h.Tag>>16), byte(h.Tag>>8), byte(h.Tag))
	switch h.Kind {
	case Start:
		return append(b, isStart)
	case End:
		return append(b, 0)
	}
	if h.Len < inlineMax {
		return append(b, isValue|byte(h.Len))
	}
	b = append(b, isValue|inlineMax)
	return AppendVarint(b, h.Len-inlineMax)
}

func varintSize(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// AppendVarint appends v as a big-endian base-128 varint: most significant
// group first, every byte but the last with bit 7 set.
func AppendVarint(b []byte, v uint64) []byte {
	n := varintSize(v)
	for i := n - 1; i >= 0; i-- {
		c := byte(v>>(7*uint(i))) & 0x7f
		if i > 0 {
			c |= 0x80
		}
		b = append(b, c)
	}
	return b
}

// readVarint decodes a varint, rejecting a leading zero group and values that
// do not fit in 63 bits.
func readVarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i == 0 && c == 0x80 {
			return 0, fmt.Errorf("%w: leading zero digit", ErrVarint)
		}
		if v > (MaxLen >> 7) {
			return 0, fmt.Errorf("%w: more than 63 bits", ErrVarint)
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

// DecodeVarint decodes a varint from the start of b and returns it with the
// number of bytes it took.
func DecodeVarint(b []byte) (uint64, int, error) {
	br := &sliceReader{b: b}
	v, err := readVarint(br)
	return v, br.i, err
}

type sliceReader struct {
	b []byte
	i int
}

func (s *sliceReader) ReadByte() (byte, error) {
	if s.i >= len(s.b) {
		return 0, io.EOF
	}
	c := s.b[s.i]
	s.i++
	return c, nil
}

// headReader is what reading a head needs.
type headReader interface {
	io.Reader
	io.ByteReader
}

// readHead reads one atom head. It returns io.EOF only when the stream ends
// cleanly before the first byte of a head.
func readHead(r headReader) (Head, error) {
	var tb [5]byte
	n, err := io.ReadFull(r, tb[:])
	if err != nil {
		if err == io.EOF && n == 0 {
			return Head{}, io.EOF
		}
		return Head{}, io.ErrUnexpectedEOF
	}
	h := Head{Tag: Tag(uint32(tb[0])<<24 | uint32(tb[1])<<16 | uint32(tb[2])<<8 | uint32(tb[3]))}
	ind := tb[4]
	switch {
	case ind&isValue != 0:
		h.Kind = Value
		h.Len = uint64(ind & 0x7f)
		if h.Len == inlineMax {
			v, err := readVarint(r)
			if err != nil {
				return Head{}, err
			}
			if v > MaxLen-inlineMax {
				return Head{}, fmt.Errorf("%w: length overflows", ErrVarint)
			}
			h.Len += v
		}
	case ind == isStart:
		h.Kind = Start
	case ind == 0:
		h.Kind = End
	default:
		return Head{}, fmt.Errorf("%w %#02x for tag %s", ErrIndicator, ind, h.Tag)
	}
	return h, nil
}
