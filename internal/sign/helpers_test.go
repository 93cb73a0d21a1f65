package sign

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/stlv"
)

// Keys are cached per name: RSA key generation is slow, above all under
// qemu, and the tests only need distinct keys, not fresh ones.
var (
	keyMu    sync.Mutex
	keyCache = map[string]crypto.Signer{}
)

func testKey(t testing.TB, alg, name string) crypto.Signer {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	if k, ok := keyCache[alg+"/"+name]; ok {
		return k
	}
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	keyCache[alg+"/"+name] = k
	return k
}

// pki is a root, an optional intermediate and a signer.
type pki struct {
	root, inter, leaf          *x509.Certificate
	rootKey, interKey, leafKey crypto.Signer
}

type pkiOptions struct {
	alg          string // signer key; CAs use ECDSA P-256 unless caAlg is set
	caAlg        string
	intermediate bool
	name         string // distinguishes independent PKIs
	leaf         CertSpec
}

func newPKI(t testing.TB, o pkiOptions) *pki {
	t.Helper()
	if o.caAlg == "" {
		o.caAlg = ECDSAP256
	}
	if o.alg == "" {
		o.alg = ECDSAP256
	}
	p := &pki{rootKey: testKey(t, o.caAlg, o.name+"root")}
	var err error
	if p.root, err = NewRootCA(p.rootKey, CertSpec{CommonName: o.name + " Test Root"}); err != nil {
		t.Fatal(err)
	}
	issuer, issuerKey := p.root, p.rootKey
	if o.intermediate {
		p.interKey = testKey(t, o.caAlg, o.name+"inter")
		if p.inter, err = NewIntermediateCA(p.root, p.rootKey, p.interKey.Public(), CertSpec{CommonName: o.name + " Test Intermediate"}); err != nil {
			t.Fatal(err)
		}
		issuer, issuerKey = p.inter, p.interKey
	}
	p.leafKey = testKey(t, o.alg, o.name+"leaf")
	if o.leaf.CommonName == "" {
		o.leaf.CommonName = o.name + " Test Signer"
	}
	if p.leaf, err = NewSignerCert(issuer, issuerKey, p.leafKey.Public(), o.leaf); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pki) signer() *Signer {
	s := &Signer{Key: p.leafKey, Cert: p.leaf}
	if p.inter != nil {
		s.Intermediates = []*x509.Certificate{p.inter}
	}
	return s
}

func (p *pki) verifier() *Verifier { return &Verifier{Roots: NewRoots(p.root)} }

// testBundle builds a small bundle in memory and returns it with its
// header hash.
func testBundle(t testing.TB, slot string, sigs [][]byte) ([]byte, hashes.Digest) {
	t.Helper()
	data := []byte("payload for " + slot)
	alg := hashes.SHA512_256
	ph := bundle.EncodePayloadHeader(&bundle.PayloadHeader{})
	hdr := bundle.EncodeHeader(&bundle.Header{Incremental: true, HashAlg: alg, Payloads: []bundle.PayloadEntry{
		{Slot: slot, HeaderHash: alg.Sum(ph), FileHash: alg.Sum(data)},
	}})
	var seg []byte
	if sigs != nil {
		seg = bundle.EncodeSignatures(sigs)
	}
	var buf bytes.Buffer
	err := bundle.WriteBundle(&buf, hdr, seg, []bundle.PayloadData{{Header: ph, Data: bytes.NewReader(data), Size: int64(len(data))}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), hashes.Digest{Alg: alg, Sum: alg.Sum(hdr)}
}

// signHash signs the metadata of a header hash.
func signHash(t testing.TB, s *Signer, h hashes.Digest) []byte {
	t.Helper()
	der, err := s.Sign(bundle.EncodeSignedMetadata(h))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// withSignatures replaces the signatures segment of a bundle with raw
// bytes (which need not be a valid segment).
func withSignatures(t testing.TB, b []byte, seg []byte) []byte {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hdrEnd := 5 + len(r.HeaderRaw)
	out := append([]byte(nil), b[:hdrEnd]...)
	out = append(out, seg...)
	return append(out, b[r.PayloadsOffset():]...)
}

func segment(atoms ...[]byte) []byte {
	var b stlv.Builder
	b.Start(bundle.TagSignatures)
	for _, a := range atoms {
		b.B = append(b.B, a...)
	}
	b.End(bundle.TagSignatures)
	return b.B
}

func value(tag stlv.Tag, v []byte) []byte {
	var b stlv.Builder
	b.Bytes(tag, v)
	return b.B
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func mustContain(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got none", want)
	}
	t.Log(err)
	if !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if bytes.Contains([]byte(err.Error()), []byte("\n")) {
		t.Fatalf("error is not one line: %q", err)
	}
}
