package sign

import (
	"bytes"
	"crypto/sha512"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// The fuzz seeds in testdata/fuzz are real signatures by a fixed PKI whose
// root is testdata/fuzz-root.pem, valid from 2025 to 2045, over fuzzHash.
// BASCULE_UPDATE_FIXTURES=1 go test -run TestUpdateFuzzFixtures rewrites
// them.

var (
	fuzzSum  = sha512.Sum512_256([]byte("bascule fuzz header"))
	fuzzHash = hashes.Digest{Alg: hashes.SHA512_256, Sum: fuzzSum[:]}
	fuzzTime = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

func fuzzVerifier(t testing.TB) *Verifier {
	roots, err := LoadRoots(filepath.Join("testdata", "fuzz-root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &Verifier{Roots: roots, Now: fixedNow(fuzzTime)}
}

// FuzzParseCMS feeds arbitrary bytes to the CMS parser and, when they
// parse, to the signature checks: nothing may panic.
func FuzzParseCMS(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := ParseCMS(der)
		if err != nil {
			return
		}
		for _, si := range c.Signers {
			_ = c.checkSignature(si)
			_ = si.DigestAlgorithm() + si.SignatureAlgorithm()
		}
		_, _ = c.SignedHeaderHash()
	})
}

// FuzzVerifySignatures runs the device's whole path on an arbitrary
// signatures segment: STLV decoding, CMS parsing, signature and chain
// checks. Whatever it accepts must be a signature over the expected hash.
func FuzzVerifySignatures(f *testing.F) {
	v := fuzzVerifier(f)
	f.Add(bundle.EncodeSignatures(nil))
	f.Fuzz(func(t *testing.T, seg []byte) {
		sigs, err := bundle.DecodeSignatures(seg)
		if err != nil {
			return
		}
		res, err := v.VerifyBundle(fuzzHash, sigs)
		if err != nil {
			return
		}
		if !bytes.Equal(res.Content, bundle.EncodeSignedMetadata(fuzzHash)) || len(res.Chain) < 2 {
			t.Fatalf("accepted signature %d over %q", res.Index, res.Content)
		}
	})
}

// TestFuzzSeedsVerify keeps the seeds meaningful: the valid ones must pass.
func TestFuzzSeedsVerify(t *testing.T) {
	v := fuzzVerifier(t)
	ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzParseCMS"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		der := readSeed(t, filepath.Join("testdata", "fuzz", "FuzzParseCMS", e.Name()))
		if _, err := v.VerifyBundle(fuzzHash, [][]byte{der}); err != nil {
			t.Errorf("seed %s: %v", e.Name(), err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no seeds")
	}
}

func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if _, err := fmt.Sscanf(string(bytes.TrimPrefix(data, []byte("go test fuzz v1\n"))), "[]byte(%q)", &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

func writeSeed(t *testing.T, fuzzer, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateFuzzFixtures(t *testing.T) {
	if os.Getenv("BASCULE_UPDATE_FIXTURES") == "" {
		t.Skip("set BASCULE_UPDATE_FIXTURES=1 to rewrite testdata")
	}
	nb := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	na := time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)
	rootKey := testKey(t, ECDSAP256, "fuzzroot")
	root, err := NewRootCA(rootKey, CertSpec{CommonName: "Fuzz Root", NotBefore: nb, NotAfter: na})
	if err != nil {
		t.Fatal(err)
	}
	interKey := testKey(t, ECDSAP256, "fuzzinter")
	inter, err := NewIntermediateCA(root, rootKey, interKey.Public(), CertSpec{CommonName: "Fuzz Intermediate", NotBefore: nb, NotAfter: na})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "fuzz-root.pem"), EncodeCertificatesPEM(root), 0o644); err != nil {
		t.Fatal(err)
	}
	meta := bundle.EncodeSignedMetadata(fuzzHash)
	var all [][]byte
	for _, a := range signerAlgs {
		k := testKey(t, a.alg, "fuzzleaf")
		leaf, err := NewSignerCert(inter, interKey, k.Public(), CertSpec{CommonName: "Fuzz Signer " + a.name, NotBefore: nb, NotAfter: na})
		if err != nil {
			t.Fatal(err)
		}
		s := &Signer{Key: k, Cert: leaf, Intermediates: []*x509.Certificate{inter}, PSS: a.pss, Now: fixedNow(nb)}
		der, err := s.Sign(meta)
		if err != nil {
			t.Fatal(err)
		}
		writeSeed(t, "FuzzParseCMS", "native-"+a.name, der)
		all = append(all, der)
		if _, err := exec.LookPath("openssl"); err == nil && a.alg != Ed25519 {
			// The shape openssl writes (rsaEncryption, no sorting, ...).
			dir := t.TempDir()
			writeFile(t, dir, "meta.raw", meta)
			writeFile(t, dir, "cert.pem", EncodeCertificatesPEM(leaf))
			writeFile(t, dir, "inter.pem", EncodeCertificatesPEM(inter))
			kp, _ := EncodeKeyPEM(k)
			writeFile(t, dir, "key.pem", kp)
			args := []string{"cms", "-sign", "-in", "meta.raw", "-signer", "cert.pem", "-inkey", "key.pem", "-certfile", "inter.pem",
				"-outform", "DER", "-nosmimecap", "-nodetach", "-binary", "-out", "sig.der"}
			if a.pss {
				args = append(args, "-keyopt", "rsa_padding_mode:pss")
			}
			if out, err := openssl(t, dir, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			der, _ := os.ReadFile(filepath.Join(dir, "sig.der"))
			writeSeed(t, "FuzzParseCMS", "openssl-"+a.name, der)
			all = append(all, der)
		}
	}
	writeSeed(t, "FuzzVerifySignatures", "all", bundle.EncodeSignatures(all))
	writeSeed(t, "FuzzVerifySignatures", "one", bundle.EncodeSignatures(all[:1]))
}
