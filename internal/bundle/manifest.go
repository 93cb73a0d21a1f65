package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// ManifestFile is the name of the manifest in a bundle directory.
const ManifestFile = "rugix-bundle.toml"

// Manifest is rugix-bundle.toml. The JSON form (embedded in the header) uses
// the same kebab-case keys and field order as rugix-bundler.
type Manifest struct {
	UpdateType    string            `toml:"update-type" json:"update-type"`
	HashAlgorithm string            `toml:"hash-algorithm,omitempty" json:"hash-algorithm,omitempty"`
	Payloads      []ManifestPayload `toml:"payloads" json:"payloads"`
}

// ManifestPayload is one [[payloads]] table.
type ManifestPayload struct {
	Delivery      Delivery             `toml:"delivery" json:"delivery"`
	Filename      string               `toml:"filename" json:"filename"`
	BlockEncoding *ManifestBlockEnc    `toml:"block-encoding" json:"block-encoding,omitempty"`
	DeltaEncoding *ManifestDeltaEncode `toml:"delta-encoding" json:"delta-encoding,omitempty"`
}

// Delivery is [payloads.delivery].
type Delivery struct {
	Type    string   `toml:"type" json:"type"`
	Slot    string   `toml:"slot,omitempty" json:"slot,omitempty"`
	Handler []string `toml:"handler,omitempty" json:"handler,omitempty"`
}

// ManifestBlockEnc is [payloads.block-encoding].
type ManifestBlockEnc struct {
	Chunker       string `toml:"chunker" json:"chunker"`
	HashAlgorithm string `toml:"hash-algorithm,omitempty" json:"hash-algorithm,omitempty"`
	Deduplicate   *bool  `toml:"deduplicate" json:"deduplicate,omitempty"`
	// Deduplication is the spelling used by Rugix's documentation and
	// meta-rugix, which Rugix itself silently ignores. We honour it.
	Deduplication *bool                `toml:"deduplication,omitempty" json:"-"`
	Compression   *ManifestCompression `toml:"compression" json:"compression,omitempty"`
}

// ManifestCompression is the compression table of a block encoding.
type ManifestCompression struct {
	Type  string `toml:"type" json:"type"`
	Level *int   `toml:"level" json:"level,omitempty"`
}

// ManifestDeltaEncode is [payloads.delta-encoding].
type ManifestDeltaEncode struct {
	Inputs       []ManifestDeltaInput `toml:"inputs" json:"inputs"`
	Format       string               `toml:"format" json:"format"`
	OriginalHash string               `toml:"original-hash" json:"original-hash"`
}

// ManifestDeltaInput is one input of a delta encoding.
type ManifestDeltaInput struct {
	Hashes []string `toml:"hashes" json:"hashes"`
}

// PayloadSpec is a validated payload of a manifest.
type PayloadSpec struct {
	ManifestPayload
	Block *BlockSpec
	Delta *DeltaEncoding
}

// BlockSpec is a validated block encoding.
type BlockSpec struct {
	Chunker     chunker.Spec
	HashAlg     hashes.Algorithm
	Dedup       bool
	Compression string
	Level       int
}

// ParsedManifest is a validated manifest.
type ParsedManifest struct {
	Manifest
	Incremental bool
	HashAlg     hashes.Algorithm
	Specs       []PayloadSpec
	Warnings    []string
}

// LoadManifest reads and validates dir/rugix-bundle.toml.
func LoadManifest(dir string) (*ParsedManifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return ParseManifest(data, path)
}

// ParseManifest validates a manifest. Unknown keys are warnings, naming the
// file and key, because Rugix ignores them silently and typos go unnoticed.
func ParseManifest(data []byte, path string) (*ParsedManifest, error) {
	var m Manifest
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &ParsedManifest{Manifest: m}
	for _, k := range md.Undecoded() {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s: unknown key %q ignored", path, k.String()))
	}
	if err := p.validate(path); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *ParsedManifest) validate(path string) error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%s: %s: %s", path, key, fmt.Sprintf(format, a...))
	}
	switch p.UpdateType {
	case "full":
	case "incremental":
		p.Incremental = true
	case "":
		return bad("update-type", "missing (want \"full\" or \"incremental\")")
	default:
		return bad("update-type", "%q is not \"full\" or \"incremental\"", p.UpdateType)
	}
	p.HashAlg = hashes.Default
	if p.HashAlgorithm != "" {
		a, err := hashes.Parse(p.HashAlgorithm)
		if err != nil {
			return bad("hash-algorithm", "%v", err)
		}
		p.HashAlg = a
	}
	for i := range p.Payloads {
		mp := &p.Payloads[i]
		key := func(k string) string { return fmt.Sprintf("payloads[%d].%s", i, k) }
		s := PayloadSpec{ManifestPayload: *mp}
		if mp.Filename == "" {
			return bad(key("filename"), "missing")
		}
		if !filepath.IsLocal(mp.Filename) {
			return bad(key("filename"), "%q must be a relative path inside payloads/", mp.Filename)
		}
		switch mp.Delivery.Type {
		case "slot":
			if mp.Delivery.Slot == "" {
				return bad(key("delivery.slot"), "missing")
			}
			if len(mp.Delivery.Handler) > 0 {
				return bad(key("delivery.handler"), "not allowed with type \"slot\"")
			}
		case "execute":
			if len(mp.Delivery.Handler) == 0 {
				return bad(key("delivery.handler"), "missing")
			}
			if mp.Delivery.Slot != "" {
				return bad(key("delivery.slot"), "not allowed with type \"execute\"")
			}
		case "":
			return bad(key("delivery.type"), "missing (want \"slot\" or \"execute\")")
		default:
			return bad(key("delivery.type"), "%q is not \"slot\" or \"execute\"", mp.Delivery.Type)
		}
		if be := mp.BlockEncoding; be != nil {
			bs := &BlockSpec{HashAlg: hashes.Default}
			var err error
			if be.Chunker == "" {
				return bad(key("block-encoding.chunker"), "missing")
			}
			if bs.Chunker, err = chunker.Parse(be.Chunker); err != nil {
				return bad(key("block-encoding.chunker"), "%v", err)
			}
			if be.HashAlgorithm != "" {
				if bs.HashAlg, err = hashes.Parse(be.HashAlgorithm); err != nil {
					return bad(key("block-encoding.hash-algorithm"), "%v", err)
				}
			}
			if be.Deduplicate != nil && be.Deduplication != nil && *be.Deduplicate != *be.Deduplication {
				return bad(key("block-encoding"), "deduplicate and deduplication disagree")
			}
			if be.Deduplicate != nil {
				bs.Dedup = *be.Deduplicate
			} else if be.Deduplication != nil {
				bs.Dedup = *be.Deduplication
				b := bs.Dedup
				be.Deduplicate = &b // the embedded JSON uses Rugix's spelling
			}
			if c := be.Compression; c != nil {
				switch c.Type {
				case CompressionXZ:
					bs.Level = 6
					if c.Level != nil {
						if *c.Level < 0 || *c.Level > 9 {
							return bad(key("block-encoding.compression.level"), "%d is outside 0-9 for xz", *c.Level)
						}
						bs.Level = *c.Level
					}
				case CompressionZstd:
					bs.Level = 3
					if c.Level != nil {
						if *c.Level < 1 || *c.Level > 22 {
							return bad(key("block-encoding.compression.level"), "%d is outside 1-22 for zstd", *c.Level)
						}
						bs.Level = *c.Level
					}
				case "":
					return bad(key("block-encoding.compression.type"), "missing (want \"xz\" or \"zstd\")")
				default:
					return bad(key("block-encoding.compression.type"), "%q is not \"xz\" or \"zstd\"", c.Type)
				}
				bs.Compression = c.Type
			}
			s.Block = bs
		}
		if de := mp.DeltaEncoding; de != nil {
			d := &DeltaEncoding{Format: de.Format}
			if de.Format != "xdelta" {
				return bad(key("delta-encoding.format"), "%q is not \"xdelta\"", de.Format)
			}
			var err error
			if d.Original, err = hashes.ParseDigest(de.OriginalHash); err != nil {
				return bad(key("delta-encoding.original-hash"), "%v", err)
			}
			for j, in := range de.Inputs {
				var hs []hashes.Digest
				for k, h := range in.Hashes {
					dg, err := hashes.ParseDigest(h)
					if err != nil {
						return bad(key(fmt.Sprintf("delta-encoding.inputs[%d].hashes[%d]", j, k)), "%v", err)
					}
					hs = append(hs, dg)
				}
				d.Inputs = append(d.Inputs, hs)
			}
			s.Delta = d
		}
		p.Specs = append(p.Specs, s)
	}
	return nil
}

// JSON is the manifest as embedded in the bundle header.
func (m *Manifest) JSON() string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // only plain strings, bools and ints
	}
	return string(b)
}

// TOML renders the manifest for `unpack`.
func (m *Manifest) TOML() []byte {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(m); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// ManifestFromJSON parses the manifest embedded in a bundle header.
func ManifestFromJSON(s string) (*Manifest, error) {
	var m Manifest
	d := json.NewDecoder(strings.NewReader(s))
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("embedded manifest: %w", err)
	}
	return &m, nil
}
