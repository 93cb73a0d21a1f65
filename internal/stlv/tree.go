package stlv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Node is a decoded atom: a value or a segment with its children. Small
// structures (headers) are decoded into a tree; payload data never is.
type Node struct {
	Tag      Tag
	Kind     Kind // Value or Start
	Value    []byte
	Children []*Node
}

// Parse decodes exactly one atom (normally a segment) from b. Trailing bytes
// are an error.
func Parse(b []byte) (*Node, error) {
	// A buffer the size of the input: Parse is on the signature path, and
	// NewReader's streaming buffer would dominate its cost.
	src := bytes.NewReader(b)
	r := &Reader{r: bufio.NewReaderSize(src, max(len(b), 16)), src: src}
	h, err := r.MustHead()
	if err != nil {
		return nil, err
	}
	if h.Kind == End {
		return nil, fmt.Errorf("unexpected end of segment %s", h.Tag)
	}
	n, err := parse(r, h, 0, uint64(len(b)))
	if err != nil {
		return nil, err
	}
	if _, err := r.Head(); err != io.EOF {
		return nil, fmt.Errorf("trailing bytes after atom %s", h.Tag)
	}
	return n, nil
}

func parse(r *Reader, h Head, depth int, remain uint64) (*Node, error) {
	n := &Node{Tag: h.Tag, Kind: h.Kind}
	if h.Kind == Value {
		if h.Len > remain {
			return nil, fmt.Errorf("value %s: %w", h.Tag, io.ErrUnexpectedEOF)
		}
		v, err := r.ReadValue(h, int(h.Len))
		if err != nil {
			return nil, err
		}
		n.Value = v
		return n, nil
	}
	if depth >= MaxDepth {
		return nil, fmt.Errorf("segment %s: nested deeper than %d", h.Tag, MaxDepth)
	}
	for {
		c, err := r.MustHead()
		if err != nil {
			return nil, err
		}
		if c.Kind == End {
			if c.Tag != h.Tag {
				return nil, fmt.Errorf("segment %s ended by tag %s", h.Tag, c.Tag)
			}
			return n, nil
		}
		child, err := parse(r, c, depth+1, remain)
		if err != nil {
			return nil, err
		}
		n.Children = append(n.Children, child)
	}
}

// Encode appends the encoding of n to b.
func (n *Node) Encode(b []byte) []byte {
	if n.Kind == Value {
		b = AppendHead(b, Head{Tag: n.Tag, Kind: Value, Len: uint64(len(n.Value))})
		return append(b, n.Value...)
	}
	b = AppendHead(b, Head{Tag: n.Tag, Kind: Start})
	for _, c := range n.Children {
		b = c.Encode(b)
	}
	return AppendHead(b, Head{Tag: n.Tag, Kind: End})
}

// Builder appends atoms to a byte slice. It is how small structures are
// encoded; the zero value is ready to use.
type Builder struct {
	B []byte
}

// Start opens a segment.
func (w *Builder) Start(t Tag) { w.B = AppendHead(w.B, Head{Tag: t, Kind: Start}) }

// End closes a segment.
func (w *Builder) End(t Tag) { w.B = AppendHead(w.B, Head{Tag: t, Kind: End}) }

// Bytes writes a value atom.
func (w *Builder) Bytes(t Tag, v []byte) {
	w.B = AppendHead(w.B, Head{Tag: t, Kind: Value, Len: uint64(len(v))})
	w.B = append(w.B, v...)
}

// String writes a UTF-8 string value.
func (w *Builder) String(t Tag, s string) { w.Bytes(t, []byte(s)) }

// Bool writes a one-byte boolean value.
func (w *Builder) Bool(t Tag, v bool) {
	if v {
		w.Bytes(t, []byte{1})
	} else {
		w.Bytes(t, []byte{0})
	}
}

// Print writes an indented dump of the stream in b, for debugging
// (`bascule-bundler print-structure`). Values longer than 32 bytes are
// abbreviated.
func Print(w io.Writer, r *Reader, names func(Tag) string) error {
	depth := 0
	for {
		at := r.Offset()
		h, err := r.Head()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := names(h.Tag)
		if h.Kind == End {
			depth--
		}
		indent := bytes.Repeat([]byte("  "), max(depth, 0))
		switch h.Kind {
		case Start:
			fmt.Fprintf(w, "%8d %s%s %s {\n", at, indent, h.Tag, name)
			depth++
		case End:
			fmt.Fprintf(w, "%8d %s} %s\n", at, indent, h.Tag)
		case Value:
			if h.Len <= 32 {
				v, err := r.ReadValue(h, 32)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%8d %s%s %s = %x\n", at, indent, h.Tag, name, v)
			} else {
				fmt.Fprintf(w, "%8d %s%s %s = <%d bytes>\n", at, indent, h.Tag, name, h.Len)
				if err := r.Discard(h.Len); err != nil {
					return err
				}
			}
		}
	}
}
