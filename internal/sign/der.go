package sign

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"sort"
)

// A small DER reader and writer. CMS needs the exact bytes of some elements
// (the signed attributes are verified as they were encoded), which
// encoding/asn1 does not hand out conveniently, and a strict hand-written
// reader is easy to fuzz: it accepts DER only (definite, minimal lengths,
// low tag numbers), which is what openssl -outform DER and Rugix produce.

// DER identifier octets used here.
const (
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagUTCTime     = 0x17
	tagGenTime     = 0x18
	tagSequence    = 0x30
	tagSet         = 0x31
	tagContext0    = 0xa0 // [0] constructed
	tagContext1    = 0xa1
	tagContext2    = 0xa2
	tagContext3    = 0xa3
	tagContextP0   = 0x80 // [0] primitive
)

// element is one DER TLV.
type element struct {
	tag  byte
	full []byte // identifier, length and contents
	body []byte // contents only
}

var errTrailing = errors.New("trailing bytes")

// readElement reads one element from the start of b and returns the rest.
func readElement(b []byte) (element, []byte, error) {
	if len(b) < 2 {
		return element{}, nil, errors.New("truncated DER element")
	}
	tag := b[0]
	if tag&0x1f == 0x1f {
		return element{}, nil, fmt.Errorf("DER tag %#02x: high tag numbers are not supported", tag)
	}
	n := int(b[1])
	hl := 2
	switch {
	case n == 0x80:
		return element{}, nil, errors.New("indefinite length (BER, not DER)")
	case n > 0x80:
		k := n & 0x7f
		if k > 4 || len(b) < 2+k {
			return element{}, nil, errors.New("invalid DER length")
		}
		if b[2] == 0 {
			return element{}, nil, errors.New("non-minimal DER length")
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		if n < 0x80 || n > 1<<30 {
			return element{}, nil, errors.New("non-minimal or oversized DER length")
		}
		hl += k
	}
	if n > len(b)-hl {
		return element{}, nil, errors.New("truncated DER element")
	}
	e := element{tag: tag, full: b[:hl+n], body: b[hl : hl+n]}
	return e, b[hl+n:], nil
}

// parseOne parses b as exactly one element.
func parseOne(b []byte) (element, error) {
	e, rest, err := readElement(b)
	if err != nil {
		return e, err
	}
	if len(rest) != 0 {
		return e, errTrailing
	}
	return e, nil
}

// children splits the contents of a constructed element.
func (e element) children() ([]element, error) {
	if e.tag&0x20 == 0 {
		return nil, fmt.Errorf("DER tag %#02x is not constructed", e.tag)
	}
	var out []element
	b := e.body
	for len(b) > 0 {
		c, rest, err := readElement(b)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		b = rest
	}
	return out, nil
}

// expect checks the tag of e.
func (e element) expect(tag byte, what string) error {
	if e.tag != tag {
		return fmt.Errorf("%s: expected DER tag %#02x, found %#02x", what, tag, e.tag)
	}
	return nil
}

// smallInt decodes a non-negative INTEGER that fits in an int.
func (e element) smallInt(what string) (int, error) {
	if err := e.expect(tagInteger, what); err != nil {
		return 0, err
	}
	var v int
	if _, err := asn1.Unmarshal(e.full, &v); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("%s: negative", what)
	}
	return v, nil
}

// oidString prints an encoded OBJECT IDENTIFIER for messages.
func oidString(full []byte) string {
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(full, &oid); err != nil {
		return fmt.Sprintf("<invalid OID %x>", full)
	}
	if n, ok := oidNames[string(full)]; ok {
		return n
	}
	return oid.String()
}

// algorithm is an AlgorithmIdentifier: the encoded OID and the encoded
// parameters (nil when absent).
type algorithm struct {
	oid    []byte
	params []byte
}

func parseAlgorithm(e element, what string) (algorithm, error) {
	if err := e.expect(tagSequence, what); err != nil {
		return algorithm{}, err
	}
	cs, err := e.children()
	if err != nil {
		return algorithm{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(cs) < 1 || len(cs) > 2 || cs[0].tag != tagOID {
		return algorithm{}, fmt.Errorf("%s: malformed algorithm identifier", what)
	}
	a := algorithm{oid: cs[0].full}
	if len(cs) == 2 {
		a.params = cs[1].full
	}
	return a, nil
}

// paramsAbsentOrNull reports whether the parameters are absent or NULL, as
// hash and most signature algorithms require.
func (a algorithm) paramsAbsentOrNull() bool {
	return a.params == nil || bytes.Equal(a.params, []byte{tagNull, 0})
}

// DER writing.

// tlv encodes one element from its tag and the concatenated contents.
func tlv(tag byte, contents ...[]byte) []byte {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	out := make([]byte, 0, n+6)
	out = append(out, tag)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 1<<8:
		out = append(out, 0x81, byte(n))
	case n < 1<<16:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	for _, c := range contents {
		out = append(out, c...)
	}
	return out
}

// setOf encodes a DER SET OF (or an implicitly tagged one): the elements are
// sorted by their encodings, as DER requires.
func setOf(tag byte, elems [][]byte) []byte {
	sorted := append([][]byte(nil), elems...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i], sorted[j]) < 0 })
	return tlv(tag, sorted...)
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
