// Package chunker implements the block chunkers of the Rugix bundle format:
// fixed-size blocks and casync's content-defined chunker, whose boundaries
// must match casync byte for byte so that block hashes (and thus
// deduplication against existing bundles and casync stores) agree.
package chunker

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Kind is the chunker family.
type Kind uint8

const (
	// Fixed cuts blocks of exactly KiB*1024 bytes (the last one may be short).
	Fixed Kind = iota
	// Casync cuts where casync's buzhash chunker would.
	Casync
)

var kindNames = [...]string{Fixed: "fixed", Casync: "casync"}

// Spec is a parsed chunker name: "fixed-<KiB>" or "casync-<avgKiB>", KiB a
// uint16 > 0.
type Spec struct {
	Kind Kind
	KiB  uint16
}

// Parse parses a chunker name. Only the canonical decimal form is accepted
// (no sign, no leading zeros), so that Parse(s).String() == s: the name is
// stored in bundles and must compare equal byte for byte.
func Parse(s string) (Spec, error) {
	name, num, ok := strings.Cut(s, "-")
	if !ok {
		return Spec{}, parseError(s, `want "fixed-<KiB>" or "casync-<avgKiB>"`)
	}
	var spec Spec
	switch name {
	case "fixed":
		spec.Kind = Fixed
	case "casync":
		spec.Kind = Casync
	default:
		return Spec{}, parseError(s, fmt.Sprintf(`unknown kind %q (want "fixed" or "casync")`, name))
	}
	v, err := strconv.ParseUint(num, 10, 16)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != num {
		return Spec{}, parseError(s, "size must be a decimal number of KiB in 1..65535")
	}
	spec.KiB = uint16(v)
	if err := spec.check(); err != nil {
		return Spec{}, parseError(s, err.Error())
	}
	return spec, nil
}

func parseError(s, why string) error {
	return fmt.Errorf("invalid chunker %q: %s", s, why)
}

// check enforces the casync parameter rules of the reference implementation.
// With KiB granularity only KiB == 0 can violate them (casync-1 has
// min = 256 > 48 and casync-65535 has max = 256 MiB < 2^31), but the rules
// are kept explicit so a Spec built by hand is checked too.
func (s Spec) check() error {
	switch s.Kind {
	case Fixed:
		if s.KiB == 0 {
			return errors.New("size must be > 0")
		}
		return nil
	case Casync:
		lo, avg, hi := s.MinBlock(), s.avg(), s.MaxBlock()
		switch {
		case lo <= window:
			return fmt.Errorf("minimum chunk size %d must be greater than %d bytes", lo, window)
		case lo > avg || avg > hi:
			return errors.New("chunk sizes must satisfy min <= avg <= max")
		case int64(hi) >= 1<<31:
			return errors.New("maximum chunk size must fit into 31 bits")
		}
		return nil
	}
	return fmt.Errorf("unknown chunker kind %d", s.Kind)
}

// String returns the canonical name, e.g. "casync-64".
func (s Spec) String() string {
	name := "unknown"
	if int(s.Kind) < len(kindNames) {
		name = kindNames[s.Kind]
	}
	return name + "-" + strconv.Itoa(int(s.KiB))
}

func (s Spec) avg() int { return int(s.KiB) * 1024 }

// MaxBlock returns the largest block the chunker can emit: KiB*1024 for
// fixed, 4*avg for casync. It fits an int on 32-bit platforms.
func (s Spec) MaxBlock() int {
	if s.Kind == Casync {
		return 4 * s.avg()
	}
	return s.avg()
}

// MinBlock returns the smallest block the chunker emits, except for the last
// block of a stream, which may be shorter: KiB*1024 for fixed, avg/4 for
// casync.
func (s Spec) MinBlock() int {
	if s.Kind == Casync {
		return s.avg() / 4
	}
	return s.avg()
}

// Chunker splits a stream into blocks.
type Chunker interface {
	// Next returns the next block. The slice is only valid until the next
	// call. At the end it returns (nil, io.EOF).
	Next() ([]byte, error)
}

// New returns a chunker reading from r. It panics if s is not valid (as
// Parse would report), since a bad spec here is a programming error.
func (s Spec) New(r io.Reader) Chunker {
	if err := s.check(); err != nil {
		panic(fmt.Sprintf("chunker: invalid spec %v: %v", s, err))
	}
	if s.Kind == Casync {
		return newCasync(s, r)
	}
	return &fixedChunker{r: r, buf: make([]byte, s.avg())}
}

// Sizes returns the sizes of all chunks of r, for tests and benchmarks.
func Sizes(s Spec, r io.Reader) ([]int, error) {
	c := s.New(r)
	var sizes []int
	for {
		b, err := c.Next()
		if err == io.EOF {
			return sizes, nil
		}
		if err != nil {
			return sizes, err
		}
		sizes = append(sizes, len(b))
	}
}

// fixedChunker emits blocks of len(buf) bytes. Like casync, an empty stream
// yields no block at all (not one empty block).
type fixedChunker struct {
	r   io.Reader
	buf []byte
	err error // sticky; io.EOF once the stream is exhausted
}

func (c *fixedChunker) Next() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	n, err := io.ReadFull(c.r, c.buf)
	switch err {
	case nil:
		return c.buf, nil
	case io.ErrUnexpectedEOF:
		c.err = io.EOF
		return c.buf[:n:n], nil
	default:
		c.err = err
		return nil, err
	}
}
