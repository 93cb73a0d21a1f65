// Package source reads update bundles from where they come from: a file, a
// stream (standard input) or an HTTP(S) URL. Every source reads forward
// only, can pass over bytes it will not need (Skip: a seek for a file, no
// download at all over HTTP with range requests) and takes advance notice of
// what will be skipped (Plan), so that an HTTP source asks the server for
// exactly the byte ranges that are needed, coalesced into few requests.
package source

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// Range is the byte range [Off, Off+Len) of a bundle.
type Range struct{ Off, Len int64 }

// End is the first offset after the range.
func (r Range) End() int64 { return r.Off + r.Len }

// Stats say what a source did.
type Stats struct {
	Read     int64 // bytes read from the source (downloaded over HTTP), read-through gaps and re-reads included
	Skipped  int64 // bytes passed over without reading them
	Requests int   // HTTP requests
	Retries  int   // HTTP requests that were retries after a failure
}

// Source is a bundle being read from its start.
type Source interface {
	io.Reader
	// Skip passes over the next n bytes without returning them.
	Skip(n int64) error
	// Plan announces byte ranges (absolute offsets) that will be skipped,
	// up to horizon: what lies beyond is not known yet (-1: no horizon).
	// It replaces the previous plan. Sources that read everything anyway
	// ignore it.
	Plan(skips []Range, horizon int64)
	// Need withdraws part of the plan: r will be read after all.
	Need(r Range)
	// Offset is the position of the next byte Read returns.
	Offset() int64
	// Size is the total size of the bundle, or -1 if unknown.
	Size() int64
	Stats() Stats
	Close() error
}

// File is a bundle in a file: skips are seeks.
type File struct {
	f     *os.File
	pos   int64
	size  int64
	stats Stats
}

// OpenFile opens a bundle file.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s := &File{f: f, size: -1}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		s.size = fi.Size()
	}
	return s, nil
}

func (s *File) Read(p []byte) (int, error) {
	n, err := s.f.Read(p)
	s.pos += int64(n)
	s.stats.Read += int64(n)
	return n, err
}

// ReadAt reads from the bundle at an absolute offset (for deduplicated
// blocks that are read again from the bundle).
func (s *File) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// Skip seeks forward. Skipping past the end of a regular file is an
// unexpected EOF.
func (s *File) Skip(n int64) error {
	if n < 0 {
		return fmt.Errorf("skip %d bytes: negative", n)
	}
	if s.size < 0 {
		m, err := io.CopyN(io.Discard, s, n)
		s.stats.Read -= m
		s.stats.Skipped += m
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if s.pos+n > s.size {
		s.stats.Skipped += s.size - s.pos
		s.pos = s.size
		s.f.Seek(s.size, io.SeekStart)
		return io.ErrUnexpectedEOF
	}
	if _, err := s.f.Seek(s.pos+n, io.SeekStart); err != nil {
		return err
	}
	s.pos += n
	s.stats.Skipped += n
	return nil
}

func (s *File) Plan([]Range, int64) {}
func (s *File) Need(Range)          {}
func (s *File) Offset() int64       { return s.pos }
func (s *File) Size() int64         { return s.size }
func (s *File) Stats() Stats        { return s.stats }
func (s *File) Close() error        { return s.f.Close() }
func (s *File) Name() string        { return s.f.Name() }

// Stream is a bundle on a pipe or standard input: skipped bytes are read and
// discarded.
type Stream struct {
	r     io.Reader
	pos   int64
	size  int64
	stats Stats
}

// NewStream reads a bundle from r; size is its length if known, else -1.
func NewStream(r io.Reader, size int64) *Stream { return &Stream{r: r, size: size} }

func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.pos += int64(n)
	s.stats.Read += int64(n)
	return n, err
}

// Skip reads n bytes and throws them away.
func (s *Stream) Skip(n int64) error {
	m, err := io.CopyN(io.Discard, s, n)
	_ = m
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (s *Stream) Plan([]Range, int64) {}
func (s *Stream) Need(Range)          {}
func (s *Stream) Offset() int64       { return s.pos }
func (s *Stream) Size() int64         { return s.size }
func (s *Stream) Stats() Stats        { return s.stats }
func (s *Stream) Close() error {
	if c, ok := s.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// plan is a sorted list of disjoint ranges that will be skipped.
type plan []Range

// normalize sorts the ranges and merges overlapping and adjacent ones.
func normalize(rs []Range) plan {
	var p plan
	for _, r := range rs {
		if r.Len > 0 {
			p = append(p, r)
		}
	}
	sort.Slice(p, func(i, j int) bool { return p[i].Off < p[j].Off })
	out := p[:0]
	for _, r := range p {
		if n := len(out); n > 0 && r.Off <= out[n-1].End() {
			if e := r.End(); e > out[n-1].End() {
				out[n-1].Len = e - out[n-1].Off
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// need removes r from the plan.
func (p plan) need(r Range) plan {
	var out plan
	for _, s := range p {
		if s.End() <= r.Off || s.Off >= r.End() {
			out = append(out, s)
			continue
		}
		if s.Off < r.Off {
			out = append(out, Range{s.Off, r.Off - s.Off})
		}
		if s.End() > r.End() {
			out = append(out, Range{r.End(), s.End() - r.End()})
		}
	}
	return out
}

// containing returns the planned skip that contains pos.
func (p plan) containing(pos int64) (Range, bool) {
	i := sort.Search(len(p), func(i int) bool { return p[i].End() > pos })
	if i < len(p) && p[i].Off <= pos {
		return p[i], true
	}
	return Range{}, false
}

// runEnd is where a read starting at pos should stop: at the start of the
// first planned skip of at least minGap bytes that starts after pos
// (smaller gaps are cheaper to read through than to split a request at), or
// at size.
func (p plan) runEnd(pos, size, minGap int64) int64 {
	// A skip that starts at or before pos does not count: reading there
	// means the bytes are needed after all.
	i := sort.Search(len(p), func(i int) bool { return p[i].Off > pos })
	for ; i < len(p); i++ {
		if p[i].Len >= minGap || (size >= 0 && p[i].End() >= size) {
			return p[i].Off
		}
	}
	return size
}
