package slotdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/stlv"
)

// IndexSuffix ends the name of every block index file.
const IndexSuffix = ".rugix-block-index"

// Index is the block index of a slot's content: the hash and size of each
// block the chunker cuts, in order. Offsets are the prefix sums of the
// sizes.
type Index struct {
	Chunker chunker.Spec
	HashAlg hashes.Algorithm
	Hashes  []byte   // the raw block hashes, concatenated
	Sizes   []uint32 // one per block
}

// CreateIndex chunks r and hashes every block.
func CreateIndex(r io.Reader, spec chunker.Spec, alg hashes.Algorithm) (*Index, error) {
	if _, err := chunker.Parse(spec.String()); err != nil {
		return nil, err
	}
	ix := &Index{Chunker: spec, HashAlg: alg}
	c := spec.New(r)
	h := alg.New()
	for {
		b, err := c.Next()
		if err == io.EOF {
			return ix, nil
		}
		if err != nil {
			return nil, fmt.Errorf("block index: %w", err)
		}
		h.Reset()
		h.Write(b)
		ix.Hashes = h.Sum(ix.Hashes)
		ix.Sizes = append(ix.Sizes, uint32(len(b)))
	}
}

// Len is the number of blocks.
func (ix *Index) Len() int { return len(ix.Sizes) }

// Hash is the raw hash of block i.
func (ix *Index) Hash(i int) []byte {
	n := ix.HashAlg.Size()
	return ix.Hashes[i*n : (i+1)*n]
}

// Offsets returns the offset of every block in the slot.
func (ix *Index) Offsets() []uint64 {
	offs := make([]uint64, len(ix.Sizes))
	var at uint64
	for i, s := range ix.Sizes {
		offs[i] = at
		at += uint64(s)
	}
	return offs
}

// FileName is the name Rugix gives the index in a slot directory, e.g.
// "casync-64_sha512-256.rugix-block-index".
func (ix *Index) FileName() string { return IndexFileName(ix.Chunker, ix.HashAlg) }

// IndexFileName is the file name of an index with these parameters.
func IndexFileName(spec chunker.Spec, alg hashes.Algorithm) string {
	return spec.String() + "_" + alg.String() + IndexSuffix
}

// Encode returns the file contents: one BLOCK_INDEX segment with the
// fields in declaration order; sizes as big-endian u32, not compressed.
func (ix *Index) Encode() []byte {
	sizes := make([]byte, 4*len(ix.Sizes))
	for i, s := range ix.Sizes {
		binary.BigEndian.PutUint32(sizes[4*i:], s)
	}
	var w stlv.Builder
	w.Start(bundle.TagBlockIndex)
	w.String(bundle.TagBlockIndexChunker, ix.Chunker.String())
	w.String(bundle.TagBlockIndexHashAlg, ix.HashAlg.String())
	w.Bytes(bundle.TagBlockIndexBlockHashes, ix.Hashes)
	w.Bytes(bundle.TagBlockIndexBlockSizes, sizes)
	w.End(bundle.TagBlockIndex)
	return w.B
}

// DecodeIndex decodes an index file. As everywhere in the format, fields
// may come in any order, unknown optional fields are skipped, and unknown
// required ones are an error.
func DecodeIndex(b []byte) (*Index, error) {
	n, err := stlv.Parse(b)
	if err != nil {
		return nil, err
	}
	if n.Tag != bundle.TagBlockIndex || n.Kind != stlv.Start {
		return nil, fmt.Errorf("not a block index: starts with %s %s", n.Kind, bundle.TagName(n.Tag))
	}
	ix := &Index{}
	var sizes []byte
	seen := map[stlv.Tag]bool{}
	for _, c := range n.Children {
		switch c.Tag {
		case bundle.TagBlockIndexChunker, bundle.TagBlockIndexHashAlg,
			bundle.TagBlockIndexBlockHashes, bundle.TagBlockIndexBlockSizes:
		default:
			if c.Tag.Optional() {
				continue
			}
			return nil, fmt.Errorf("block index: unknown required tag %s", c.Tag)
		}
		if c.Kind != stlv.Value {
			return nil, fmt.Errorf("block index: %s is a segment, not a value", bundle.TagName(c.Tag))
		}
		if seen[c.Tag] {
			return nil, fmt.Errorf("block index: %s appears more than once", bundle.TagName(c.Tag))
		}
		seen[c.Tag] = true
		switch c.Tag {
		case bundle.TagBlockIndexChunker:
			if !utf8.Valid(c.Value) {
				return nil, fmt.Errorf("block index: chunker is not UTF-8")
			}
			if ix.Chunker, err = chunker.Parse(string(c.Value)); err != nil {
				return nil, fmt.Errorf("block index: %w", err)
			}
		case bundle.TagBlockIndexHashAlg:
			if ix.HashAlg, err = hashes.Parse(string(c.Value)); err != nil {
				return nil, fmt.Errorf("block index: %w", err)
			}
		case bundle.TagBlockIndexBlockHashes:
			ix.Hashes = c.Value
		case bundle.TagBlockIndexBlockSizes:
			sizes = c.Value
		}
	}
	for _, t := range []stlv.Tag{bundle.TagBlockIndexChunker, bundle.TagBlockIndexHashAlg,
		bundle.TagBlockIndexBlockHashes, bundle.TagBlockIndexBlockSizes} {
		if !seen[t] {
			return nil, fmt.Errorf("block index: missing %s", bundle.TagName(t))
		}
	}
	if len(sizes)%4 != 0 {
		return nil, fmt.Errorf("block index: %d bytes of block sizes is not a multiple of 4", len(sizes))
	}
	ix.Sizes = make([]uint32, len(sizes)/4)
	for i := range ix.Sizes {
		ix.Sizes[i] = binary.BigEndian.Uint32(sizes[4*i:])
	}
	if len(ix.Hashes) != len(ix.Sizes)*ix.HashAlg.Size() {
		return nil, fmt.Errorf("block index: %d bytes of %s hashes for %d blocks", len(ix.Hashes), ix.HashAlg, len(ix.Sizes))
	}
	return ix, nil
}

// WriteIndex stores ix in a slot directory under its FileName, replacing
// an index with the same parameters atomically. It returns the path.
func WriteIndex(slotDir string, ix *Index) (string, error) {
	if err := mkdirDurable(slotDir); err != nil {
		return "", err
	}
	path := filepath.Join(slotDir, ix.FileName())
	if err := writeAtomic(path, ix.Encode()); err != nil {
		return "", err
	}
	return path, nil
}

// ReadIndex reads and decodes an index file.
func ReadIndex(path string) (*Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read block index: %w", err)
	}
	ix, err := DecodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ix, nil
}

// IndexFile is an index file found in a slot directory, described by its
// name; its contents are read with ReadIndex.
type IndexFile struct {
	Path    string
	Chunker chunker.Spec
	HashAlg hashes.Algorithm
}

// ListIndices lists a slot's index files, sorted by name (os.ReadDir sorts). Files whose
// names do not parse as <chunker>_<hash-algorithm> are not indices and are
// skipped, as Rugix skips them.
func (db *DB) ListIndices(slot string) ([]IndexFile, error) {
	dir, err := db.Dir(slot)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list block indices: %w", err)
	}
	var files []IndexFile
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), IndexSuffix)
		if !ok || e.IsDir() {
			continue
		}
		c, a, ok := strings.Cut(name, "_")
		if !ok {
			continue
		}
		spec, err := chunker.Parse(c)
		if err != nil {
			continue
		}
		alg, err := hashes.Parse(a)
		if err != nil {
			continue
		}
		files = append(files, IndexFile{Path: filepath.Join(dir, e.Name()), Chunker: spec, HashAlg: alg})
	}
	return files, nil
}

// AddIndex computes the index of a slot's content and stores it, as
// `slots create-index` does. It returns the path of the index file.
func (db *DB) AddIndex(slot string, r io.Reader, spec chunker.Spec, alg hashes.Algorithm) (string, error) {
	dir, err := db.Dir(slot)
	if err != nil {
		return "", err
	}
	ix, err := CreateIndex(r, spec, alg)
	if err != nil {
		return "", fmt.Errorf("slot %s: %w", slot, err)
	}
	return WriteIndex(dir, ix)
}
