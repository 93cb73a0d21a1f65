package stlv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxDepth is how deeply segments may nest.
const MaxDepth = 32

// Reader reads atoms from a stream. It never holds a value in memory unless
// asked to (ReadValue, Capture), so payloads of any size stream through it.
type Reader struct {
	r   *bufio.Reader
	src io.Reader // what r reads from
	off int64     // stream offset of the next unread byte
}

// NewReader returns a Reader on r. If r is already a *bufio.Reader it is
// used as it is.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	return &Reader{r: br, src: r}
}

// Offset is the stream position of the next byte to be read.
func (r *Reader) Offset() int64 { return r.off }

// Read reads raw bytes (the value of the last value head).
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.off += int64(n)
	return n, err
}

// ReadByte implements io.ByteReader.
func (r *Reader) ReadByte() (byte, error) {
	c, err := r.r.ReadByte()
	if err == nil {
		r.off++
	}
	return c, err
}

// Peek returns the next n bytes without consuming them.
func (r *Reader) Peek(n int) ([]byte, error) { return r.r.Peek(n) }

// Head reads the next atom head. At a clean end of stream it returns io.EOF.
func (r *Reader) Head() (Head, error) {
	at := r.off
	h, err := readHead(r)
	if err != nil && err != io.EOF {
		return h, fmt.Errorf("atom at offset %d: %w", at, err)
	}
	return h, err
}

// MustHead is Head where the end of the stream is an error.
func (r *Reader) MustHead() (Head, error) {
	h, err := r.Head()
	if err == io.EOF {
		return h, fmt.Errorf("atom at offset %d: %w", r.off, io.ErrUnexpectedEOF)
	}
	return h, err
}

// Skipper is a source that can pass over bytes without reading them (an
// HTTP source with range requests does not download them).
type Skipper interface {
	Skip(n int64) error
}

// Discard skips n raw bytes. On a seekable source, long skips seek; on a
// Skipper, skips beyond the buffered bytes are the source's Skip.
func (r *Reader) Discard(n uint64) error {
	if sk, ok := r.src.(Skipper); ok && n > uint64(r.r.Buffered()) && n < MaxLen {
		b := r.r.Buffered()
		r.r.Discard(b)
		r.r.Reset(r.src)
		r.off += int64(b)
		if err := sk.Skip(int64(n) - int64(b)); err != nil {
			return err
		}
		r.off += int64(n) - int64(b)
		return nil
	}
	if sk, ok := r.src.(io.Seeker); ok && n > uint64(r.r.Buffered())+1<<20 && n < MaxLen {
		b := r.r.Buffered()
		r.r.Discard(b)
		rest := int64(n) - int64(b)
		pos, err := sk.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		end, err := sk.Seek(0, io.SeekEnd)
		if err != nil {
			return err
		}
		if pos+rest > end {
			sk.Seek(end, io.SeekStart)
			r.r.Reset(r.src)
			r.off += int64(b) + end - pos
			return io.ErrUnexpectedEOF
		}
		if _, err := sk.Seek(pos+rest, io.SeekStart); err != nil {
			return err
		}
		r.r.Reset(r.src)
		r.off += int64(n)
		return nil
	}
	for n > 0 {
		step := n
		if step > 1<<30 {
			step = 1 << 30
		}
		d, err := r.r.Discard(int(step))
		r.off += int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n -= step
	}
	return nil
}

// Skip skips the atom whose head was just read: a value's bytes, or a whole
// segment up to and including its matching end.
func (r *Reader) Skip(h Head) error {
	switch h.Kind {
	case Value:
		return r.Discard(h.Len)
	case End:
		return nil
	}
	depth := 1
	stack := []Tag{h.Tag}
	for depth > 0 {
		c, err := r.MustHead()
		if err != nil {
			return err
		}
		switch c.Kind {
		case Value:
			if err := r.Discard(c.Len); err != nil {
				return err
			}
		case Start:
			if depth >= MaxDepth {
				return fmt.Errorf("segment %s: nested deeper than %d", c.Tag, MaxDepth)
			}
			stack = append(stack, c.Tag)
			depth++
		case End:
			if c.Tag != stack[depth-1] {
				return fmt.Errorf("segment %s ended by tag %s", stack[depth-1], c.Tag)
			}
			stack = stack[:depth-1]
			depth--
		}
	}
	return nil
}

// ErrTooLarge is returned when a captured atom exceeds its size limit.
var ErrTooLarge = errors.New("exceeds size limit")

// Capture reads the atom whose head h was just read and returns its complete
// encoding (head included), failing if it would exceed limit bytes. Hashes
// over segments are computed over exactly these bytes.
func (r *Reader) Capture(h Head, limit int) ([]byte, error) {
	buf := AppendHead(nil, h)
	if len(buf) > limit {
		return nil, fmt.Errorf("atom %s: %w of %d bytes", h.Tag, ErrTooLarge, limit)
	}
	var err error
	buf, err = r.capture(buf, h, limit, 0)
	return buf, err
}

func (r *Reader) capture(buf []byte, h Head, limit, depth int) ([]byte, error) {
	switch h.Kind {
	case End:
		return buf, nil
	case Value:
		if h.Len > uint64(limit-len(buf)) {
			return nil, fmt.Errorf("atom %s: %w of %d bytes", h.Tag, ErrTooLarge, limit)
		}
		var err error
		if buf, err = r.appendValue(buf, h.Len); err != nil {
			return nil, fmt.Errorf("value %s: %w", h.Tag, err)
		}
		return buf, nil
	}
	if depth >= MaxDepth {
		return nil, fmt.Errorf("segment %s: nested deeper than %d", h.Tag, MaxDepth)
	}
	for {
		c, err := r.MustHead()
		if err != nil {
			return nil, err
		}
		buf = AppendHead(buf, c)
		if len(buf) > limit {
			return nil, fmt.Errorf("segment %s: %w of %d bytes", h.Tag, ErrTooLarge, limit)
		}
		if c.Kind == End {
			if c.Tag != h.Tag {
				return nil, fmt.Errorf("segment %s ended by tag %s", h.Tag, c.Tag)
			}
			return buf, nil
		}
		if buf, err = r.capture(buf, c, limit, depth+1); err != nil {
			return nil, err
		}
	}
}

// ReadValue reads the value of head h into memory, up to limit bytes.
func (r *Reader) ReadValue(h Head, limit int) ([]byte, error) {
	if h.Kind != Value {
		return nil, fmt.Errorf("tag %s: expected a value, found %s", h.Tag, h.Kind)
	}
	if h.Len > uint64(limit) {
		return nil, fmt.Errorf("value %s: %w of %d bytes", h.Tag, ErrTooLarge, limit)
	}
	b, err := r.appendValue(nil, h.Len)
	if err != nil {
		return nil, fmt.Errorf("value %s: %w", h.Tag, err)
	}
	return b, nil
}

// appendValue reads n bytes onto buf, growing it as data actually arrives,
// so that a length claimed by a truncated or hostile stream costs nothing.
func (r *Reader) appendValue(buf []byte, n uint64) ([]byte, error) {
	for n > 0 {
		step := min(n, 64<<10)
		start := len(buf)
		buf = append(buf, make([]byte, step)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n -= step
	}
	if buf == nil {
		buf = []byte{}
	}
	return buf, nil
}
