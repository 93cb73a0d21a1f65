package sign

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
)

var signerAlgs = []struct {
	name string
	alg  string
	pss  bool
	want string // signature algorithm written
}{
	{"ecdsa-p256", ECDSAP256, false, "ecdsa-with-SHA256"},
	{"ecdsa-p384", ECDSAP384, false, "ecdsa-with-SHA384"},
	{"ed25519", Ed25519, false, "Ed25519"},
	{"rsa-pkcs1", RSA2048, false, "sha256WithRSAEncryption"},
	{"rsa-pss", RSA2048, true, "RSASSA-PSS"},
}

func TestSignVerifyEachAlgorithm(t *testing.T) {
	for _, a := range signerAlgs {
		for _, inter := range []bool{false, true} {
			name := a.name
			if inter {
				name += "/intermediate"
			}
			t.Run(name, func(t *testing.T) {
				p := newPKI(t, pkiOptions{alg: a.alg, caAlg: a.alg, intermediate: inter})
				s := p.signer()
				s.PSS = a.pss
				_, h := testBundle(t, "system", nil)
				der := signHash(t, s, h)
				c, err := ParseCMS(der)
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Signers[0].SignatureAlgorithm(); got != a.want {
					t.Errorf("signature algorithm %s, want %s", got, a.want)
				}
				res, err := p.verifier().VerifyBundle(h, [][]byte{der})
				if err != nil {
					t.Fatal(err)
				}
				wantLen := 2
				if inter {
					wantLen = 3
				}
				if !res.Signer.Equal(p.leaf) || len(res.Chain) != wantLen || !res.Chain[len(res.Chain)-1].Equal(p.root) {
					t.Errorf("unexpected result: signer %s, chain of %d", res.Signer.Subject, len(res.Chain))
				}
				if !bytes.Equal(res.Content, bundle.EncodeSignedMetadata(h)) {
					t.Error("content is not the signed metadata")
				}
				if len(res.Warnings) != 0 {
					t.Errorf("warnings: %v", res.Warnings)
				}
			})
		}
	}
}

func TestSignedAttributes(t *testing.T) {
	p := newPKI(t, pkiOptions{})
	s := p.signer()
	when := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	s.Now = fixedNow(when)
	_, h := testBundle(t, "a", nil)
	c, err := ParseCMS(signHash(t, s, h))
	if err != nil {
		t.Fatal(err)
	}
	si := c.Signers[0]
	if !si.HasSignedAttributes() || !si.SigningTime.Equal(when) || si.DigestAlgorithm() != "sha256" {
		t.Errorf("signer info: attrs %v, time %v, digest %s", si.HasSignedAttributes(), si.SigningTime, si.DigestAlgorithm())
	}
	for _, oid := range [][]byte{oidContentType, oidMessageDigest, oidSigningTime} {
		if _, err := si.attr(oid); err != nil {
			t.Error(err)
		}
	}
	if len(c.Certificates) != 1 || !c.Certificates[0].Equal(p.leaf) {
		t.Error("signer certificate not embedded")
	}
}

// TestRejections covers every way a signature must be refused, each with a
// one-line reason.
func TestRejections(t *testing.T) {
	_, h := testBundle(t, "system", nil)
	_, other := testBundle(t, "other", nil)
	good := newPKI(t, pkiOptions{intermediate: true})
	now := time.Now()
	past := CertSpec{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}
	future := CertSpec{NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}

	cases := []struct {
		name string
		sigs func(t *testing.T) ([][]byte, *Verifier)
		want string
	}{
		{"wrong root", func(t *testing.T) ([][]byte, *Verifier) {
			other := newPKI(t, pkiOptions{name: "other"})
			return [][]byte{signHash(t, other.signer(), h)}, good.verifier()
		}, "certificate signed by unknown authority"},
		{"untrusted intermediate", func(t *testing.T) ([][]byte, *Verifier) {
			// A well-formed chain whose intermediate was issued by a root
			// the device does not trust.
			rogue := newPKI(t, pkiOptions{name: "rogue", intermediate: true})
			return [][]byte{signHash(t, rogue.signer(), h)}, good.verifier()
		}, "certificate signed by unknown authority"},
		{"intermediate missing", func(t *testing.T) ([][]byte, *Verifier) {
			s := good.signer()
			s.Intermediates = nil
			return [][]byte{signHash(t, s, h)}, good.verifier()
		}, "certificate signed by unknown authority"},
		{"intermediate is not a CA", func(t *testing.T) ([][]byte, *Verifier) {
			// A signer certificate used to issue another one.
			p := newPKI(t, pkiOptions{name: "leafca"})
			k := testKey(t, ECDSAP256, "leafca2")
			leaf2, err := NewSignerCert(p.leaf, p.leafKey, k.Public(), CertSpec{CommonName: "second"})
			if err != nil {
				t.Fatal(err)
			}
			s := &Signer{Key: k, Cert: leaf2, Intermediates: []*x509.Certificate{p.leaf}}
			return [][]byte{signHash(t, s, h)}, p.verifier()
		}, "parent certificate cannot sign"},
		{"expired", func(t *testing.T) ([][]byte, *Verifier) {
			p := newPKI(t, pkiOptions{name: "expired", leaf: past})
			return [][]byte{signHash(t, p.signer(), h)}, p.verifier()
		}, "expired at"},
		{"not yet valid", func(t *testing.T) ([][]byte, *Verifier) {
			p := newPKI(t, pkiOptions{name: "future", leaf: future})
			return [][]byte{signHash(t, p.signer(), h)}, p.verifier()
		}, "is not valid before"},
		{"expired before the clock floor, clock unset", func(t *testing.T) ([][]byte, *Verifier) {
			p := newPKI(t, pkiOptions{name: "expired2", leaf: past})
			v := p.verifier()
			v.Now = fixedNow(time.Unix(100, 0))
			v.ClockFloor = now.Add(-time.Hour)
			return [][]byte{signHash(t, p.signer(), h)}, v
		}, "expired at"},
		{"EKU without codeSigning", func(t *testing.T) ([][]byte, *Verifier) {
			p := newPKI(t, pkiOptions{name: "eku", leaf: CertSpec{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}})
			return [][]byte{signHash(t, p.signer(), h)}, p.verifier()
		}, "extended key usage does not include codeSigning"},
		{"signer is a CA", func(t *testing.T) ([][]byte, *Verifier) {
			s := &Signer{Key: good.interKey, Cert: good.inter}
			return [][]byte{signHash(t, s, h)}, good.verifier()
		}, "is a CA certificate"},
		{"copied from another bundle", func(t *testing.T) ([][]byte, *Verifier) {
			return [][]byte{signHash(t, good.signer(), other)}, good.verifier()
		}, "signature is for another bundle"},
		{"garbage", func(t *testing.T) ([][]byte, *Verifier) {
			return [][]byte{[]byte("definitely not DER")}, good.verifier()
		}, "malformed CMS signature"},
		{"truncated", func(t *testing.T) ([][]byte, *Verifier) {
			der := signHash(t, good.signer(), h)
			return [][]byte{der[:len(der)-10]}, good.verifier()
		}, "malformed CMS signature"},
		{"signature bytes altered", func(t *testing.T) ([][]byte, *Verifier) {
			der := signHash(t, good.signer(), h)
			der[len(der)-3] ^= 1
			return [][]byte{der}, good.verifier()
		}, "signature does not verify"},
		{"content altered", func(t *testing.T) ([][]byte, *Verifier) {
			// Replace the signed header hash inside the CMS by another one
			// of the same length: the message digest no longer matches.
			der := signHash(t, good.signer(), other)
			der = bytes.Replace(der, []byte(other.String()), []byte(h.String()), 1)
			return [][]byte{der}, good.verifier()
		}, "message-digest attribute does not match the content"},
		{"not signed", func(t *testing.T) ([][]byte, *Verifier) {
			return nil, good.verifier()
		}, "bundle is not signed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sigs, v := c.sigs(t)
			res, err := v.VerifyBundle(h, sigs)
			if res != nil {
				t.Fatalf("accepted (signer %s)", res.Signer.Subject)
			}
			mustContain(t, err, c.want)
			var rej *RejectedError
			if !errors.As(err, &rej) {
				t.Fatalf("error %T is not a RejectedError", err)
			}
			if len(sigs) > 0 && !strings.HasPrefix(err.Error(), "no valid signature: signature 1: ") {
				t.Errorf("reason does not name the signature: %q", err)
			}
		})
	}
}

func TestClockPolicy(t *testing.T) {
	_, h := testBundle(t, "system", nil)
	now := time.Now()
	future := newPKI(t, pkiOptions{name: "future", leaf: CertSpec{NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}})
	sig := signHash(t, future.signer(), h)

	// A clock before the floor has not been set: not-yet-valid is accepted
	// with a warning.
	v := future.verifier()
	v.Now = fixedNow(time.Date(1970, 1, 1, 0, 5, 0, 0, time.UTC))
	v.ClockFloor = now.Add(-time.Hour)
	res, err := v.VerifyBundle(h, [][]byte{sig})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "probably not set") {
		t.Errorf("warnings: %q", res.Warnings)
	}
	// A set clock enforces validity.
	v.Now = fixedNow(now)
	if _, err := v.VerifyBundle(h, [][]byte{sig}); err == nil {
		t.Error("not-yet-valid certificate accepted with a set clock")
	}
	// And the same certificate is fine once its time has come.
	v.Now = fixedNow(now.Add(36 * time.Hour))
	if _, err := v.VerifyBundle(h, [][]byte{sig}); err != nil {
		t.Error(err)
	}
	// The default floor is the compiled-in one.
	if f := DefaultClockFloor(); f.Year() < 2025 {
		t.Errorf("default clock floor %v", f)
	}
}

func TestSeveralSignatures(t *testing.T) {
	_, h := testBundle(t, "system", nil)
	a := newPKI(t, pkiOptions{name: "a"})
	b := newPKI(t, pkiOptions{name: "b", alg: Ed25519})
	sigs := [][]byte{signHash(t, a.signer(), h), []byte{0x30, 0x00}, signHash(t, b.signer(), h)}
	v := &Verifier{Roots: NewRoots(b.root)}
	res, err := v.VerifyBundle(h, sigs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != 2 || len(res.Rejected) != 2 {
		t.Errorf("index %d, rejected %v", res.Index, res.Rejected)
	}
	// Several roots: the first signature is enough.
	v.Roots = NewRoots(b.root, a.root)
	if res, err := v.VerifyBundle(h, sigs); err != nil || res.Index != 0 {
		t.Errorf("index %v, err %v", res, err)
	}
	// Only the first MaxChecked signatures are tried.
	many := make([][]byte, MaxChecked, MaxChecked+1)
	for i := range many {
		many[i] = []byte("junk")
	}
	_, err = v.VerifyBundle(h, append(many, sigs[2]))
	mustContain(t, err, "only the first 32 of 33 signatures")
	// No root at all is a configuration error, not a pass.
	if _, err := (&Verifier{}).VerifyBundle(h, sigs); err == nil {
		t.Error("verifier without roots accepted a bundle")
	}
}

func TestVerifyHeaderOtherAlgorithm(t *testing.T) {
	// Rugix checks the signed digest in the algorithm it names.
	b, _ := testBundle(t, "system", nil)
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	p := newPKI(t, pkiOptions{})
	h256 := hashes.Digest{Alg: hashes.SHA256, Sum: hashes.SHA256.Sum(r.HeaderRaw)}
	sig := signHash(t, p.signer(), h256)
	if _, err := p.verifier().VerifyHeader(r.HeaderRaw, r.Header.HashAlg, [][]byte{sig}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.verifier().VerifyBundle(r.HeaderHash, [][]byte{sig}); !errors.Is(err, ErrOtherBundle) {
		t.Errorf("VerifyBundle: %v", err)
	}
}

// TestBundleLevel runs the checks on whole bundles, the way the device
// agent will: read header and signatures, verify, only then payloads.
func TestBundleLevel(t *testing.T) {
	p := newPKI(t, pkiOptions{intermediate: true})
	v := p.verifier()
	plain, h := testBundle(t, "system", nil)
	sig := signHash(t, p.signer(), h)
	signed := withSignatures(t, plain, bundle.EncodeSignatures([][]byte{sig}))

	verify := func(b []byte) error {
		r, err := bundle.NewReader(bytes.NewReader(b))
		if err != nil {
			return err
		}
		_, err = v.VerifyReader(r)
		return err
	}
	if err := verify(signed); err != nil {
		t.Fatal(err)
	}
	t.Run("unsigned", func(t *testing.T) {
		err := verify(plain)
		mustContain(t, err, "bundle is not signed")
		if !errors.Is(err, ErrNotSigned) {
			t.Error("not ErrNotSigned")
		}
	})
	t.Run("header modified after signing", func(t *testing.T) {
		b := bytes.Replace(append([]byte(nil), signed...), []byte("system"), []byte("systen"), 1)
		mustContain(t, verify(b), "signature is for another bundle")
	})
	t.Run("signature copied from another bundle", func(t *testing.T) {
		other, _ := testBundle(t, "other", nil)
		mustContain(t, verify(withSignatures(t, other, bundle.EncodeSignatures([][]byte{sig}))), "signature is for another bundle")
	})
	t.Run("segment truncated", func(t *testing.T) {
		seg := bundle.EncodeSignatures([][]byte{sig})
		mustContain(t, verify(withSignatures(t, plain, seg[:len(seg)-40])), "signatures: ")
	})
	t.Run("segment garbage", func(t *testing.T) {
		mustContain(t, verify(withSignatures(t, plain, []byte("\xa8\x39\x36\xf1\x40garbage"))), "signatures: ")
	})
	t.Run("garbage signature value", func(t *testing.T) {
		mustContain(t, verify(withSignatures(t, plain, bundle.EncodeSignatures([][]byte{[]byte("garbage")}))), "malformed CMS signature")
	})
	t.Run("unknown required tag in segment", func(t *testing.T) {
		seg := segment(value(bundle.TagSignaturesCMS, sig), value(0x1234_5678, []byte("x")))
		mustContain(t, verify(withSignatures(t, plain, seg)), "unknown required tag")
	})
	t.Run("unknown optional tag in segment", func(t *testing.T) {
		seg := segment(value(0x9234_5678, []byte("x")), value(bundle.TagSignaturesCMS, sig))
		if err := verify(withSignatures(t, plain, seg)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCheckSignature(t *testing.T) {
	p := newPKI(t, pkiOptions{})
	b, _ := testBundle(t, "system", nil)
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	sig := signHash(t, p.signer(), r.HeaderHash)
	if _, err := CheckSignature(sig, r.HeaderRaw, r.Header.HashAlg); err != nil {
		t.Fatal(err)
	}
	_, other := testBundle(t, "other", nil)
	_, err = CheckSignature(signHash(t, p.signer(), other), r.HeaderRaw, r.Header.HashAlg)
	mustContain(t, err, "signature is for another bundle")
	// A CMS over something that is not signed metadata.
	der, err := p.signer().Sign([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckSignature(der, r.HeaderRaw, r.Header.HashAlg)
	mustContain(t, err, "signed content is not bundle metadata")
	bad := append([]byte(nil), sig...)
	bad[len(bad)-2] ^= 0x10
	_, err = CheckSignature(bad, r.HeaderRaw, r.Header.HashAlg)
	mustContain(t, err, "signature does not verify")
}

func TestSignerRefusesWrongKey(t *testing.T) {
	p := newPKI(t, pkiOptions{})
	s := &Signer{Key: testKey(t, ECDSAP256, "unrelated"), Cert: p.leaf}
	_, err := s.Sign([]byte("x"))
	mustContain(t, err, "does not belong to the signer certificate")
}
