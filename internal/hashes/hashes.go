// Package hashes names the hash algorithms of the bundle format and parses
// and prints digests the way Rugix does ("sha512-256:<hex>").
package hashes

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Algorithm is a hash algorithm the bundle format allows.
type Algorithm uint8

const (
	SHA512_256 Algorithm = iota // the default everywhere
	SHA256
	SHA512
)

// Default is the algorithm used when a manifest names none.
const Default = SHA512_256

// Parse accepts "sha256", "sha512", "sha512-256" and the underscore form
// "sha512_256" that some Rugix versions write in JSON.
func Parse(s string) (Algorithm, error) {
	switch s {
	case "sha512-256", "sha512_256":
		return SHA512_256, nil
	case "sha256":
		return SHA256, nil
	case "sha512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("unknown hash algorithm %q (want sha256, sha512-256 or sha512)", s)
}

// String is the name written into bundles ("sha512-256").
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "sha256"
	case SHA512:
		return "sha512"
	}
	return "sha512-256"
}

// JSONName is the key Rugix uses in slot-state JSON maps ("sha512_256").
func (a Algorithm) JSONName() string { return strings.ReplaceAll(a.String(), "-", "_") }

// Size is the digest length in bytes.
func (a Algorithm) Size() int {
	if a == SHA512 {
		return 64
	}
	return 32
}

// New returns a fresh hasher.
func (a Algorithm) New() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	return sha512.New512_256()
}

// Sum hashes b.
func (a Algorithm) Sum(b []byte) []byte {
	switch a {
	case SHA256:
		s := sha256.Sum256(b)
		return s[:]
	case SHA512:
		s := sha512.Sum512(b)
		return s[:]
	}
	s := sha512.Sum512_256(b)
	return s[:]
}

// Digest is a hash value together with its algorithm.
type Digest struct {
	Alg Algorithm
	Sum []byte
}

// String prints the digest as "<alg>:<lowercase hex>".
func (d Digest) String() string { return d.Alg.String() + ":" + hex.EncodeToString(d.Sum) }

// Equal reports whether both digests have the same algorithm and value.
func (d Digest) Equal(o Digest) bool { return d.Alg == o.Alg && bytes.Equal(d.Sum, o.Sum) }

// ParseDigest parses "<alg>:<hex>" or "<alg>_<hex>".
func ParseDigest(s string) (Digest, error) {
	i := strings.LastIndexAny(s, ":_")
	if i < 0 {
		return Digest{}, fmt.Errorf("invalid digest %q: want <algorithm>:<hex>", s)
	}
	alg, err := Parse(s[:i])
	if err != nil {
		return Digest{}, fmt.Errorf("invalid digest %q: %w", s, err)
	}
	sum, err := hex.DecodeString(s[i+1:])
	if err != nil || len(sum) != alg.Size() {
		return Digest{}, fmt.Errorf("invalid digest %q: want %d hex digits after %q", s, 2*alg.Size(), s[:i+1])
	}
	return Digest{Alg: alg, Sum: sum}, nil
}
