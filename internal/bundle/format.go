package bundle

import (
	"fmt"
	"unicode/utf8"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/stlv"
)

// Header is the bundle header. Its exact encoded bytes are what the header
// hash (and therefore every signature) covers.
type Header struct {
	Manifest    string // JSON of the manifest; "" when absent
	HasManifest bool
	Incremental bool
	HashAlg     hashes.Algorithm
	Payloads    []PayloadEntry
	Requires    []string // Bascule extension, see TagHeaderRequires
}

// PayloadEntry describes one payload in the header's index.
type PayloadEntry struct {
	Slot       string   // slot delivery: slot name or alias
	Execute    []string // execute delivery: handler argv
	IsExecute  bool
	HeaderHash []byte // raw digest of the PAYLOAD_HEADER segment
	FileHash   []byte // raw digest of the decoded payload file
	Delta      *DeltaEncoding
}

// Target describes where a payload goes, for messages.
func (e PayloadEntry) Target() string {
	if e.IsExecute {
		return fmt.Sprintf("execute %q", e.Execute)
	}
	return fmt.Sprintf("slot %q", e.Slot)
}

// DeltaEncoding says the payload file is a patch against a known input.
type DeltaEncoding struct {
	Format   string
	Inputs   [][]hashes.Digest
	Original hashes.Digest
}

// PayloadHeader precedes each payload's data.
type PayloadHeader struct {
	Block *BlockEncoding
}

// Compression of stored blocks.
const (
	CompressionNone = ""
	CompressionXZ   = "xz"
	CompressionZstd = "zstd" // Bascule extension
)

// BlockEncoding describes how a payload was cut into blocks.
type BlockEncoding struct {
	Chunker      chunker.Spec
	HashAlg      hashes.Algorithm
	Deduplicated bool
	Compression  string
	BlockHashes  []byte // as stored: compressed when Compression is set
	BlockSizes   []byte // as stored; nil when absent
}

// EncodeHeader returns the complete BUNDLE_HEADER segment.
func EncodeHeader(h *Header) []byte {
	var b stlv.Builder
	b.Start(TagHeader)
	if h.HasManifest {
		b.String(TagHeaderManifest, h.Manifest)
	}
	b.Bool(TagHeaderIsIncremental, h.Incremental)
	b.String(TagHeaderHashAlgorithm, h.HashAlg.String())
	for _, e := range h.Payloads {
		b.Start(TagHeaderPayloadIndex)
		if !e.IsExecute {
			b.Start(TagEntryTypeSlot)
			b.String(TagSlotSlot, e.Slot)
			b.End(TagEntryTypeSlot)
		} else {
			b.Start(TagEntryTypeExecute)
			for _, a := range e.Execute {
				b.String(TagExecuteHandler, a)
			}
			b.End(TagEntryTypeExecute)
		}
		b.Bytes(TagEntryHeaderHash, e.HeaderHash)
		b.Bytes(TagEntryFileHash, e.FileHash)
		if d := e.Delta; d != nil {
			b.Start(TagEntryDeltaEncoding)
			b.String(TagDeltaFormat, d.Format)
			for _, in := range d.Inputs {
				b.Start(TagDeltaInput)
				for _, hh := range in {
					b.String(TagDeltaInputHash, hh.String())
				}
				b.End(TagDeltaInput)
			}
			b.String(TagDeltaOriginalHash, d.Original.String())
			b.End(TagEntryDeltaEncoding)
		}
		b.End(TagHeaderPayloadIndex)
	}
	// Extensions go last so that bundles without them are byte-identical to
	// what rugix-bundler writes.
	for _, r := range h.Requires {
		b.String(TagHeaderRequires, r)
	}
	b.End(TagHeader)
	return b.B
}

// EncodePayloadHeader returns the complete PAYLOAD_HEADER segment.
func EncodePayloadHeader(p *PayloadHeader) []byte {
	var b stlv.Builder
	b.Start(TagPayloadHeader)
	if e := p.Block; e != nil {
		b.Start(TagPayloadBlockEncoding)
		b.String(TagBlockChunker, e.Chunker.String())
		b.String(TagBlockHashAlgorithm, e.HashAlg.String())
		b.Bool(TagBlockDeduplicated, e.Deduplicated)
		if e.Compression != CompressionNone {
			b.String(TagBlockCompression, e.Compression)
		}
		b.Bytes(TagBlockHashes, e.BlockHashes)
		if e.BlockSizes != nil {
			b.Bytes(TagBlockSizes, e.BlockSizes)
		}
		b.End(TagPayloadBlockEncoding)
	}
	b.End(TagPayloadHeader)
	return b.B
}

// fields walks the children of a struct segment: known tags go to their
// handler, unknown optional ones are skipped, unknown required ones are an
// error. Scalars may appear only once; required ones must appear.
type fields struct {
	where string
	seen  map[stlv.Tag]int
}

type field struct {
	tag      stlv.Tag
	repeated bool
	required bool
	segment  bool
	handle   func(n *stlv.Node) error
}

func decodeStruct(n *stlv.Node, where string, fs []field) error {
	if n.Kind != stlv.Start {
		return fmt.Errorf("%s: expected a segment, found a value", where)
	}
	count := make(map[stlv.Tag]int, len(fs))
	for _, c := range n.Children {
		var f *field
		for i := range fs {
			if fs[i].tag == c.Tag {
				f = &fs[i]
				break
			}
		}
		if f == nil {
			if c.Tag.Optional() {
				continue
			}
			return fmt.Errorf("%s: unknown required tag %s", where, c.Tag)
		}
		count[c.Tag]++
		if count[c.Tag] > 1 && !f.repeated {
			return fmt.Errorf("%s: %s appears more than once", where, TagName(c.Tag))
		}
		if f.segment != (c.Kind == stlv.Start) {
			return fmt.Errorf("%s: %s has the wrong atom kind", where, TagName(c.Tag))
		}
		if err := f.handle(c); err != nil {
			return err
		}
	}
	for _, f := range fs {
		if f.required && count[f.tag] == 0 {
			return fmt.Errorf("%s: missing %s", where, TagName(f.tag))
		}
	}
	return nil
}

func str(n *stlv.Node, where string) (string, error) {
	if !utf8.Valid(n.Value) {
		return "", fmt.Errorf("%s: %s is not valid UTF-8", where, TagName(n.Tag))
	}
	return string(n.Value), nil
}

func boolean(n *stlv.Node, where string) (bool, error) {
	if len(n.Value) != 1 || n.Value[0] > 1 {
		return false, fmt.Errorf("%s: %s is not a boolean", where, TagName(n.Tag))
	}
	return n.Value[0] == 1, nil
}

func digest(n *stlv.Node, where string) (hashes.Digest, error) {
	s, err := str(n, where)
	if err != nil {
		return hashes.Digest{}, err
	}
	d, err := hashes.ParseDigest(s)
	if err != nil {
		return d, fmt.Errorf("%s: %w", where, err)
	}
	return d, nil
}

// DecodeHeader decodes a complete BUNDLE_HEADER segment.
func DecodeHeader(raw []byte) (*Header, error) {
	n, err := stlv.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bundle header: %w", err)
	}
	if n.Tag != TagHeader {
		return nil, fmt.Errorf("bundle header: found tag %s", n.Tag)
	}
	h := &Header{}
	const where = "bundle header"
	err = decodeStruct(n, where, []field{
		{tag: TagHeaderManifest, handle: func(c *stlv.Node) (err error) {
			h.HasManifest = true
			h.Manifest, err = str(c, where)
			return err
		}},
		{tag: TagHeaderIsIncremental, required: true, handle: func(c *stlv.Node) (err error) {
			h.Incremental, err = boolean(c, where)
			return err
		}},
		{tag: TagHeaderHashAlgorithm, required: true, handle: func(c *stlv.Node) error {
			s, err := str(c, where)
			if err == nil {
				h.HashAlg, err = hashes.Parse(s)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			return nil
		}},
		{tag: TagHeaderPayloadIndex, repeated: true, segment: true, handle: func(c *stlv.Node) error {
			e, err := decodeEntry(c, fmt.Sprintf("payload index entry %d", len(h.Payloads)))
			if err != nil {
				return err
			}
			h.Payloads = append(h.Payloads, *e)
			return nil
		}},
		{tag: TagHeaderRequires, repeated: true, handle: func(c *stlv.Node) error {
			s, err := str(c, where)
			h.Requires = append(h.Requires, s)
			return err
		}},
	})
	if err != nil {
		return nil, err
	}
	for i, e := range h.Payloads {
		if len(e.HeaderHash) != h.HashAlg.Size() || len(e.FileHash) != h.HashAlg.Size() {
			return nil, fmt.Errorf("payload index entry %d: hash length does not match %s", i, h.HashAlg)
		}
	}
	return h, nil
}

func decodeEntry(n *stlv.Node, where string) (*PayloadEntry, error) {
	e := &PayloadEntry{}
	types := 0
	err := decodeStruct(n, where, []field{
		{tag: TagEntryTypeSlot, segment: true, handle: func(c *stlv.Node) error {
			types++
			return decodeStruct(c, where, []field{{tag: TagSlotSlot, required: true, handle: func(c *stlv.Node) (err error) {
				e.Slot, err = str(c, where)
				return err
			}}})
		}},
		{tag: TagEntryTypeExecute, segment: true, handle: func(c *stlv.Node) error {
			types++
			e.IsExecute = true
			return decodeStruct(c, where, []field{{tag: TagExecuteHandler, repeated: true, handle: func(c *stlv.Node) error {
				s, err := str(c, where)
				e.Execute = append(e.Execute, s)
				return err
			}}})
		}},
		{tag: TagEntryHeaderHash, required: true, handle: func(c *stlv.Node) error { e.HeaderHash = c.Value; return nil }},
		{tag: TagEntryFileHash, required: true, handle: func(c *stlv.Node) error { e.FileHash = c.Value; return nil }},
		{tag: TagEntryDeltaEncoding, segment: true, handle: func(c *stlv.Node) (err error) {
			e.Delta, err = decodeDelta(c, where+": delta encoding")
			return err
		}},
	})
	if err != nil {
		return nil, err
	}
	if types != 1 {
		return nil, fmt.Errorf("%s: needs exactly one delivery type (slot or execute), found %d", where, types)
	}
	if e.IsExecute && len(e.Execute) == 0 {
		return nil, fmt.Errorf("%s: execute delivery without a handler", where)
	}
	return e, nil
}

func decodeDelta(n *stlv.Node, where string) (*DeltaEncoding, error) {
	d := &DeltaEncoding{}
	err := decodeStruct(n, where, []field{
		{tag: TagDeltaFormat, required: true, handle: func(c *stlv.Node) (err error) {
			d.Format, err = str(c, where)
			return err
		}},
		{tag: TagDeltaInput, repeated: true, segment: true, handle: func(c *stlv.Node) error {
			var in []hashes.Digest
			err := decodeStruct(c, where, []field{{tag: TagDeltaInputHash, repeated: true, handle: func(c *stlv.Node) error {
				h, err := digest(c, where)
				in = append(in, h)
				return err
			}}})
			d.Inputs = append(d.Inputs, in)
			return err
		}},
		{tag: TagDeltaOriginalHash, required: true, handle: func(c *stlv.Node) (err error) {
			d.Original, err = digest(c, where)
			return err
		}},
	})
	return d, err
}

// DecodePayloadHeader decodes a complete PAYLOAD_HEADER segment.
func DecodePayloadHeader(raw []byte, where string) (*PayloadHeader, error) {
	n, err := stlv.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if n.Tag != TagPayloadHeader {
		return nil, fmt.Errorf("%s: expected PAYLOAD_HEADER, found tag %s", where, n.Tag)
	}
	p := &PayloadHeader{}
	err = decodeStruct(n, where, []field{
		{tag: TagPayloadBlockEncoding, segment: true, handle: func(c *stlv.Node) (err error) {
			p.Block, err = decodeBlockEncoding(c, where+": block encoding")
			return err
		}},
	})
	return p, err
}

func decodeBlockEncoding(n *stlv.Node, where string) (*BlockEncoding, error) {
	e := &BlockEncoding{}
	err := decodeStruct(n, where, []field{
		{tag: TagBlockChunker, required: true, handle: func(c *stlv.Node) error {
			s, err := str(c, where)
			if err == nil {
				e.Chunker, err = chunker.Parse(s)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			return nil
		}},
		{tag: TagBlockHashAlgorithm, required: true, handle: func(c *stlv.Node) error {
			s, err := str(c, where)
			if err == nil {
				e.HashAlg, err = hashes.Parse(s)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			return nil
		}},
		{tag: TagBlockDeduplicated, required: true, handle: func(c *stlv.Node) (err error) {
			e.Deduplicated, err = boolean(c, where)
			return err
		}},
		{tag: TagBlockCompression, handle: func(c *stlv.Node) error {
			s, err := str(c, where)
			if err != nil {
				return err
			}
			switch s {
			case CompressionXZ, CompressionZstd:
				e.Compression = s
				return nil
			}
			return fmt.Errorf("%s: unknown compression %q", where, s)
		}},
		{tag: TagBlockHashes, required: true, handle: func(c *stlv.Node) error { e.BlockHashes = c.Value; return nil }},
		{tag: TagBlockSizes, handle: func(c *stlv.Node) error {
			e.BlockSizes = c.Value
			if e.BlockSizes == nil {
				e.BlockSizes = []byte{}
			}
			return nil
		}},
	})
	return e, err
}

// EncodeSignedMetadata returns the bytes that a bundle signature signs.
func EncodeSignedMetadata(headerHash hashes.Digest) []byte {
	var b stlv.Builder
	b.Start(TagSignedMetadata)
	b.String(TagSignedMetadataHeadHash, headerHash.String())
	b.End(TagSignedMetadata)
	return b.B
}

// DecodeSignedMetadata is the inverse of EncodeSignedMetadata.
func DecodeSignedMetadata(raw []byte) (hashes.Digest, error) {
	const where = "signed metadata"
	n, err := stlv.Parse(raw)
	if err != nil {
		return hashes.Digest{}, fmt.Errorf("%s: %w", where, err)
	}
	if n.Tag != TagSignedMetadata {
		return hashes.Digest{}, fmt.Errorf("%s: found tag %s", where, n.Tag)
	}
	var d hashes.Digest
	err = decodeStruct(n, where, []field{{tag: TagSignedMetadataHeadHash, required: true, handle: func(c *stlv.Node) (err error) {
		d, err = digest(c, where)
		return err
	}}})
	return d, err
}

// EncodeSignatures returns a SIGNATURES segment holding the given DER CMS
// blobs.
func EncodeSignatures(cms [][]byte) []byte {
	var b stlv.Builder
	b.Start(TagSignatures)
	for _, s := range cms {
		b.Bytes(TagSignaturesCMS, s)
	}
	b.End(TagSignatures)
	return b.B
}

// DecodeSignatures decodes a complete SIGNATURES segment.
func DecodeSignatures(raw []byte) ([][]byte, error) {
	const where = "signatures"
	n, err := stlv.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if n.Tag != TagSignatures {
		return nil, fmt.Errorf("%s: found tag %s", where, n.Tag)
	}
	var out [][]byte
	err = decodeStruct(n, where, []field{{tag: TagSignaturesCMS, repeated: true, handle: func(c *stlv.Node) error {
		out = append(out, c.Value)
		return nil
	}}})
	return out, err
}
