package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/bascule-ota/bascule/internal/blockenc"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/source"
	"github.com/bascule-ota/bascule/internal/stlv"
)

// Limits from the reference implementation.
const (
	MaxHeader        = 128 << 10
	MaxPayloadHeader = 32 << 20
	MaxSignatures    = 32 << 20
)

// FeatureZstd is required by bundles with zstd-compressed blocks.
const FeatureZstd = "zstd"

var knownFeatures = map[string]bool{FeatureZstd: true}

// ErrNotBundle is returned when the input does not start with the magic.
var ErrNotBundle = errors.New("not a bundle (no bundle magic at the start)")

// Reader reads a bundle as a stream: the header and signatures first, then
// one payload at a time. It never holds payload data in memory.
type Reader struct {
	s    *stlv.Reader
	at   io.ReaderAt // the bundle, when it is seekable
	plan planner     // the source, when it takes a plan of what is skipped
	next int
	done bool

	HeaderRaw     []byte // exact BUNDLE_HEADER bytes
	Header        *Header
	HeaderHash    hashes.Digest
	SignaturesRaw []byte   // exact SIGNATURES bytes, nil if absent
	Signatures    [][]byte // DER CMS blobs
	payloadsAt    int64    // offset of the PAYLOADS start atom
}

// PayloadsOffset is where the PAYLOADS segment starts: everything before it is
// header and signatures.
func (r *Reader) PayloadsOffset() int64 { return r.payloadsAt }

// NewReader reads the bundle start, the header and the signatures. If r is an
// io.ReaderAt positioned at offset 0, deduplicated payloads can be verified
// without an output to read back from.
func NewReader(r io.Reader) (*Reader, error) {
	br := &Reader{s: stlv.NewReader(r)}
	if ra, ok := r.(io.ReaderAt); ok {
		br.at = ra
	}
	if p, ok := r.(planner); ok {
		br.plan = p
	}
	magic, err := br.s.Peek(len(Magic))
	if err != nil || !bytes.Equal(magic, Magic) {
		return nil, ErrNotBundle
	}
	if _, err := br.s.Head(); err != nil { // BUNDLE start, checked by the magic
		return nil, err
	}
	h, err := br.s.MustHead()
	if err != nil {
		return nil, err
	}
	if br.HeaderRaw, err = br.s.Capture(h, MaxHeader); err != nil {
		return nil, fmt.Errorf("bundle header: %w", err)
	}
	if br.Header, err = DecodeHeader(br.HeaderRaw); err != nil {
		return nil, err
	}
	br.HeaderHash = hashes.Digest{Alg: br.Header.HashAlg, Sum: br.Header.HashAlg.Sum(br.HeaderRaw)}
	for _, f := range br.Header.Requires {
		if !knownFeatures[f] {
			return nil, fmt.Errorf("bundle requires feature %q, which this version does not support", f)
		}
	}
	for {
		at := br.s.Offset()
		h, err := br.s.MustHead()
		if err != nil {
			return nil, err
		}
		switch {
		case h.Tag == TagPayloads && h.Kind == stlv.Start:
			br.payloadsAt = at
			return br, nil
		case h.Tag == TagSignatures && h.Kind == stlv.Start:
			if br.SignaturesRaw != nil {
				return nil, fmt.Errorf("bundle has more than one signatures segment")
			}
			if br.SignaturesRaw, err = br.s.Capture(h, MaxSignatures); err != nil {
				return nil, fmt.Errorf("signatures: %w", err)
			}
			if br.Signatures, err = DecodeSignatures(br.SignaturesRaw); err != nil {
				return nil, err
			}
		case h.Tag.Optional() && h.Kind != stlv.End:
			if err := br.s.Skip(h); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("bundle: unexpected %s %s (%s) before the payloads", h.Kind, h.Tag, TagName(h.Tag))
		}
	}
}

// Payload is a payload whose header has been read and verified; its data is
// next in the stream.
type Payload struct {
	Index     int
	Entry     *PayloadEntry
	Header    *PayloadHeader
	HeaderRaw []byte
	DataLen   uint64
	Table     *blockenc.Table // nil without block encoding

	r         *Reader
	dataStart int64
	consumed  bool
}

// Name is how messages refer to the payload: its slot, or its index.
func (p *Payload) Name() string {
	if p.Entry.IsExecute {
		return fmt.Sprintf("#%d (execute)", p.Index)
	}
	return fmt.Sprintf("%q", p.Entry.Slot)
}

// Next returns the next payload, or io.EOF after the last one (when the
// bundle's closing atoms have been checked). The previous payload must have
// been decoded or skipped.
func (r *Reader) Next() (*Payload, error) {
	if r.done {
		return nil, io.EOF
	}
	for {
		h, err := r.s.MustHead()
		if err != nil {
			return nil, err
		}
		switch {
		case h.Tag == TagPayload && h.Kind == stlv.Start:
			if r.next >= len(r.Header.Payloads) {
				return nil, fmt.Errorf("bundle has more payloads than its index lists (%d)", len(r.Header.Payloads))
			}
			return r.openPayload()
		case h.Tag == TagPayloads && h.Kind == stlv.End:
			if r.next != len(r.Header.Payloads) {
				return nil, fmt.Errorf("bundle ends after %d payloads, its index lists %d", r.next, len(r.Header.Payloads))
			}
			return nil, r.finish()
		case h.Tag.Optional() && h.Kind != stlv.End:
			if err := r.s.Skip(h); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("payloads: unexpected %s %s (%s)", h.Kind, h.Tag, TagName(h.Tag))
		}
	}
}

func (r *Reader) finish() error {
	for {
		h, err := r.s.MustHead()
		if err != nil {
			return err
		}
		if h.Tag == TagBundle && h.Kind == stlv.End {
			break
		}
		if !h.Tag.Optional() || h.Kind == stlv.End {
			return fmt.Errorf("bundle: unexpected %s %s (%s) after the payloads", h.Kind, h.Tag, TagName(h.Tag))
		}
		if err := r.s.Skip(h); err != nil {
			return err
		}
	}
	if _, err := r.s.Peek(1); err != io.EOF {
		return fmt.Errorf("bundle: trailing data after the end of the bundle")
	}
	r.done = true
	return io.EOF
}

func (r *Reader) openPayload() (*Payload, error) {
	p := &Payload{Index: r.next, Entry: &r.Header.Payloads[r.next], r: r}
	r.next++
	wrap := func(err error) error { return fmt.Errorf("payload %s: %w", p.Name(), err) }
	for p.HeaderRaw == nil {
		h, err := r.s.MustHead()
		if err != nil {
			return nil, wrap(err)
		}
		switch {
		case h.Tag == TagPayloadHeader && h.Kind == stlv.Start:
			if p.HeaderRaw, err = r.s.Capture(h, MaxPayloadHeader); err != nil {
				return nil, wrap(err)
			}
		case h.Tag.Optional() && h.Kind != stlv.End:
			if err := r.s.Skip(h); err != nil {
				return nil, wrap(err)
			}
		default:
			return nil, wrap(fmt.Errorf("expected the payload header, found %s %s", h.Kind, h.Tag))
		}
	}
	if !bytes.Equal(r.Header.HashAlg.Sum(p.HeaderRaw), p.Entry.HeaderHash) {
		return nil, wrap(fmt.Errorf("header hash mismatch"))
	}
	ph, err := DecodePayloadHeader(p.HeaderRaw, "header")
	if err != nil {
		return nil, wrap(err)
	}
	p.Header = ph
	for {
		h, err := r.s.MustHead()
		if err != nil {
			return nil, wrap(err)
		}
		if h.Tag == TagPayloadData && h.Kind == stlv.Value {
			p.DataLen = h.Len
			break
		}
		if !h.Tag.Optional() || h.Kind == stlv.End {
			return nil, wrap(fmt.Errorf("expected the payload data, found %s %s", h.Kind, h.Tag))
		}
		if err := r.s.Skip(h); err != nil {
			return nil, wrap(err)
		}
	}
	p.dataStart = r.s.Offset()
	if b := ph.Block; b != nil {
		if p.Table, err = blockenc.NewTable(b.Chunker, b.HashAlg, b.Deduplicated, b.Compression, b.BlockHashes, b.BlockSizes, p.DataLen); err != nil {
			return nil, wrap(err)
		}
	}
	return p, nil
}

// planner is a source that takes advance notice of the bundle ranges that
// will be skipped (see source.Source).
type planner interface {
	Plan(skips []source.Range, horizon int64)
	Need(r source.Range)
}

// DecodeOptions tune Payload.Decode.
type DecodeOptions struct {
	Workers  int
	Progress func(n int64) // bundle bytes consumed
	// Readback, if set, reads back what was written so far (the target);
	// deduplicated payloads need it unless the bundle itself is seekable.
	Readback io.ReaderAt
	// Local provides blocks the device already has (block-encoded
	// payloads only): each is checked against its hash, and its stored
	// bytes in the bundle are skipped rather than read.
	Local blockenc.Local
	// Result, if set, receives the details of a block-encoded payload's
	// decoding (block sizes, bytes reused).
	Result *blockenc.DecodeResult
}

// payloadData reads the data of one payload and nothing beyond it.
type payloadData struct {
	s    *stlv.Reader
	left int64
}

func (d *payloadData) Read(p []byte) (int, error) {
	if d.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.s.Read(p)
	d.left -= int64(n)
	return n, err
}

func (d *payloadData) Skip(n int64) error {
	if n > d.left {
		return io.ErrUnexpectedEOF
	}
	if err := d.s.Discard(uint64(n)); err != nil {
		return err
	}
	d.left -= n
	return nil
}

// Decode streams the decoded payload to w. With a block encoding every block
// is verified before it is written. The file hash is checked at the end; a
// mismatch is an error (and, without block encoding, the only check).
func (p *Payload) Decode(w io.Writer, o DecodeOptions) (int64, error) {
	if p.consumed {
		return 0, fmt.Errorf("payload %s: already read", p.Name())
	}
	p.consumed = true
	fh := p.r.Header.HashAlg.New()
	pd := &payloadData{s: p.r.s, left: int64(p.DataLen)}
	data := io.Reader(pd)
	var n int64
	if p.Table != nil {
		do := blockenc.DecodeOptions{Workers: o.Workers, FileHash: fh, Progress: o.Progress, Readback: o.Readback}
		if p.r.at != nil && o.Readback == nil {
			do.SourceAt = io.NewSectionReader(p.r.at, p.dataStart, int64(p.DataLen))
		}
		if o.Local != nil {
			do.Local, do.Skip = o.Local, pd.Skip
		}
		if pl := p.r.plan; pl != nil {
			// Tell the source what will be skipped, and that the plan
			// ends with this payload's data.
			var skips []source.Range
			if o.Local != nil {
				for _, j := range p.Table.LocalPlan(o.Local) {
					off, size := p.Table.StoredRange(j)
					skips = append(skips, source.Range{Off: p.dataStart + off, Len: size})
				}
				do.Need = func(off, n int64) { pl.Need(source.Range{Off: p.dataStart + off, Len: n}) }
			}
			pl.Plan(skips, p.dataStart+int64(p.DataLen))
		}
		res, err := blockenc.Decode(data, p.Table, w, do)
		if err != nil {
			var be *blockenc.BlockError
			if errors.As(err, &be) {
				return 0, fmt.Errorf("block %d of payload %s: %w", be.Block, p.Name(), be.Err)
			}
			return 0, fmt.Errorf("payload %s: %w", p.Name(), err)
		}
		n = res.Size
		if o.Result != nil {
			*o.Result = *res
		}
	} else {
		if pl := p.r.plan; pl != nil {
			pl.Plan(nil, p.dataStart+int64(p.DataLen))
		}
		var err error
		n, err = io.Copy(io.MultiWriter(w, fh), progressReader{data, o.Progress})
		if err == nil && uint64(n) != p.DataLen {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return 0, fmt.Errorf("payload %s: %w", p.Name(), err)
		}
	}
	if !bytes.Equal(fh.Sum(nil), p.Entry.FileHash) {
		return 0, fmt.Errorf("payload %s: file hash mismatch", p.Name())
	}
	if err := p.r.endPayload(); err != nil {
		return 0, fmt.Errorf("payload %s: %w", p.Name(), err)
	}
	return n, nil
}

// Skip passes over the payload data without checking it.
func (p *Payload) Skip() error {
	if p.consumed {
		return nil
	}
	p.consumed = true
	if pl := p.r.plan; pl != nil {
		end := p.dataStart + int64(p.DataLen)
		pl.Plan([]source.Range{{Off: p.dataStart, Len: int64(p.DataLen)}}, end)
	}
	if err := p.r.s.Discard(p.DataLen); err != nil {
		return fmt.Errorf("payload %s: %w", p.Name(), err)
	}
	return p.r.endPayload()
}

func (r *Reader) endPayload() error {
	for {
		h, err := r.s.MustHead()
		if err != nil {
			return err
		}
		if h.Tag == TagPayload && h.Kind == stlv.End {
			return nil
		}
		if !h.Tag.Optional() || h.Kind == stlv.End {
			return fmt.Errorf("unexpected %s %s after the payload data", h.Kind, h.Tag)
		}
		if err := r.s.Skip(h); err != nil {
			return err
		}
	}
}
