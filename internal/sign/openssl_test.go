package sign

import (
	"bytes"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
)

// Interoperability with the openssl CLI, which is how Rugix 0.8 signs and
// verifies. These tests skip when openssl is not installed; CI installs it.

func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not in PATH")
	}
}

func openssl(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rugixVerify runs the exact verification command of rugix-ctrl 0.8 and
// returns the extracted content.
func rugixVerify(t *testing.T, dir string, der []byte, root *x509.Certificate) ([]byte, []byte, error) {
	t.Helper()
	writeFile(t, dir, "sig.der", der)
	writeFile(t, dir, "root.pem", EncodeCertificatesPEM(root))
	out, err := openssl(t, dir, "cms", "-verify", "-inform", "DER", "-in", "sig.der", "-no-CAfile", "-no-CApath",
		"-no-CAstore", "-verify_retcode", "-CAfile", "root.pem", "-out", "content.raw")
	if err != nil {
		return nil, out, err
	}
	content, rerr := os.ReadFile(filepath.Join(dir, "content.raw"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	return content, out, nil
}

// opensslLacksEd25519CMS recognises openssl versions (before 3.2) whose CMS
// code passes a digest to EdDSA and fails.
func opensslLacksEd25519CMS(out []byte) bool {
	return bytes.Contains(out, []byte("invalid digest")) || bytes.Contains(out, []byte("no default digest"))
}

func TestOpenSSLVerifiesNativeSignatures(t *testing.T) {
	requireOpenSSL(t)
	for _, a := range signerAlgs {
		for _, inter := range []bool{false, true} {
			name := a.name
			if inter {
				name += "/intermediate"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				p := newPKI(t, pkiOptions{alg: a.alg, caAlg: a.alg, intermediate: inter})
				s := p.signer()
				s.PSS = a.pss
				_, h := testBundle(t, "system", nil)
				meta := bundle.EncodeSignedMetadata(h)
				der := signHash(t, s, h)
				content, out, err := rugixVerify(t, dir, der, p.root)
				if err != nil && a.alg == Ed25519 && opensslLacksEd25519CMS(out) {
					opensslCheckEd25519(t, dir, der, meta)
					return
				}
				if err != nil {
					t.Fatalf("openssl cms -verify: %v\n%s", err, out)
				}
				if !bytes.Equal(content, meta) {
					t.Fatalf("openssl extracted %x, want the signed metadata %x", content, meta)
				}
			})
		}
	}
}

// opensslCheckEd25519 checks an Ed25519 signature piecewise with openssl
// when its CMS code cannot: the message digest attribute is SHA-512 of the
// content, and the signature verifies over the DER SET OF the signed
// attributes.
func opensslCheckEd25519(t *testing.T, dir string, der, meta []byte) {
	t.Helper()
	t.Log("this openssl cannot verify Ed25519 CMS (fixed in 3.2); checking digest and signature with openssl dgst/pkeyutl")
	c, err := ParseCMS(der)
	if err != nil {
		t.Fatal(err)
	}
	si := c.Signers[0]
	if !bytes.Equal(c.Content, meta) {
		t.Fatal("content is not the signed metadata")
	}
	writeFile(t, dir, "content.raw", c.Content)
	out, err := openssl(t, dir, "dgst", "-sha512", "-binary", "-out", "digest.bin", "content.raw")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	digest, _ := os.ReadFile(filepath.Join(dir, "digest.bin"))
	md, err := si.attr(oidMessageDigest)
	if err != nil || !bytes.Equal(md.body, digest) {
		t.Fatalf("message digest attribute %x, openssl computes %x", md.body, digest)
	}
	pub, err := x509.MarshalPKIXPublicKey(si.Cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "pub.der", pub)
	writeFile(t, dir, "attrs.der", append([]byte{tagSet}, si.signedAttrs[1:]...))
	writeFile(t, dir, "sig.bin", si.signature)
	out, err = openssl(t, dir, "pkeyutl", "-verify", "-pubin", "-inkey", "pub.der", "-keyform", "DER", "-rawin",
		"-in", "attrs.der", "-sigfile", "sig.bin")
	if err != nil {
		t.Fatalf("openssl pkeyutl -verify: %v\n%s", err, out)
	}
}

func TestNativeVerifiesOpenSSLSignatures(t *testing.T) {
	requireOpenSSL(t)
	type variant struct {
		name  string
		alg   string
		inter bool
		args  []string
	}
	var vs []variant
	for _, inter := range []bool{false, true} {
		vs = append(vs,
			variant{"ecdsa-p256", ECDSAP256, inter, nil},
			variant{"ecdsa-p384", ECDSAP384, inter, nil},
			variant{"ed25519", Ed25519, inter, []string{"-md", "sha512"}},
			variant{"rsa-pkcs1", RSA2048, inter, nil},
			variant{"rsa-pss-digest-salt", RSA2048, inter, []string{"-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:digest"}},
			variant{"rsa-pss-default-salt", RSA2048, inter, []string{"-keyopt", "rsa_padding_mode:pss"}},
		)
	}
	vs = append(vs,
		variant{"ecdsa-p256-sha512", ECDSAP256, false, []string{"-md", "sha512"}},
		variant{"ecdsa-p256-noattr", ECDSAP256, false, []string{"-noattr"}},
		variant{"rsa-noattr", RSA2048, false, []string{"-noattr"}},
		variant{"ecdsa-p256-keyid", ECDSAP256, true, []string{"-keyid"}}, // SubjectKeyIdentifier as signer identifier
	)
	for _, v := range vs {
		name := v.name
		if v.inter {
			name += "/intermediate"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := newPKI(t, pkiOptions{alg: v.alg, intermediate: v.inter})
			_, h := testBundle(t, "system", nil)
			writeFile(t, dir, "meta.raw", bundle.EncodeSignedMetadata(h))
			writeFile(t, dir, "cert.pem", EncodeCertificatesPEM(p.leaf))
			key, err := EncodeKeyPEM(p.leafKey)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "key.pem", key)
			// rugix-bundler's invocation.
			args := []string{"cms", "-sign", "-in", "meta.raw", "-signer", "cert.pem", "-inkey", "key.pem",
				"-outform", "DER", "-nosmimecap", "-nodetach", "-binary", "-out", "sig.der"}
			if v.inter {
				writeFile(t, dir, "inter.pem", EncodeCertificatesPEM(p.inter))
				args = append(args, "-certfile", "inter.pem")
			}
			out, err := openssl(t, dir, append(args, v.args...)...)
			if err != nil && v.alg == Ed25519 && opensslLacksEd25519CMS(out) {
				t.Skipf("this openssl cannot make Ed25519 CMS signatures (fixed in 3.2): %s", firstLine(out))
			}
			if err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, out)
			}
			der, err := os.ReadFile(filepath.Join(dir, "sig.der"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.verifier().VerifyBundle(h, [][]byte{der})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Signer.Equal(p.leaf) {
				t.Error("wrong signer")
			}
			_, other := testBundle(t, "other", nil)
			if _, err := p.verifier().VerifyBundle(other, [][]byte{der}); err == nil {
				t.Error("openssl signature accepted for another bundle")
			}
		})
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// TestOpenSSLPurpose documents why signer certificates carry
// emailProtection next to codeSigning: without -purpose, openssl cms
// -verify (Rugix 0.8) checks the S/MIME signing purpose.
func TestOpenSSLPurpose(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	p := newPKI(t, pkiOptions{name: "codesign-only", leaf: CertSpec{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}})
	_, h := testBundle(t, "system", nil)
	der := signHash(t, p.signer(), h)
	if _, err := p.verifier().VerifyBundle(h, [][]byte{der}); err != nil {
		t.Fatal(err) // fine for Bascule and Rugix 1.x
	}
	if _, out, err := rugixVerify(t, dir, der, p.root); err == nil {
		t.Log("openssl accepted a codeSigning-only signer without -purpose")
	} else if !bytes.Contains(out, []byte("unsuitable certificate purpose")) {
		t.Fatalf("unexpected openssl failure: %s", out)
	}
	out, err := openssl(t, dir, "cms", "-verify", "-inform", "DER", "-in", "sig.der", "-CAfile", "root.pem", "-purpose", "any", "-out", "content.raw")
	if err != nil {
		t.Fatalf("with -purpose any: %v\n%s", err, out)
	}
	// No EKU at all suits every verifier too.
	q := newPKI(t, pkiOptions{name: "no-eku", leaf: CertSpec{ExtKeyUsage: []x509.ExtKeyUsage{}}})
	der = signHash(t, q.signer(), h)
	if _, err := q.verifier().VerifyBundle(h, [][]byte{der}); err != nil {
		t.Fatal(err)
	}
	if _, out, err := rugixVerify(t, dir, der, q.root); err != nil {
		t.Fatalf("openssl refused a signer without EKU: %s", out)
	}
}

// TestOpenSSLUnsupportedShapes: a detached signature (no -nodetach) and
// streamed BER (-stream) are refused with a reason that says what to change.
func TestOpenSSLUnsupportedShapes(t *testing.T) {
	requireOpenSSL(t)
	p := newPKI(t, pkiOptions{})
	_, h := testBundle(t, "system", nil)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"detached", nil, "detached"},
		{"streamed BER", []string{"-nodetach", "-stream"}, "indefinite length"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "meta.raw", bundle.EncodeSignedMetadata(h))
			writeFile(t, dir, "cert.pem", EncodeCertificatesPEM(p.leaf))
			key, _ := EncodeKeyPEM(p.leafKey)
			writeFile(t, dir, "key.pem", key)
			args := append([]string{"cms", "-sign", "-in", "meta.raw", "-signer", "cert.pem", "-inkey", "key.pem",
				"-outform", "DER", "-nosmimecap", "-binary", "-out", "sig.der"}, c.args...)
			if out, err := openssl(t, dir, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			der, _ := os.ReadFile(filepath.Join(dir, "sig.der"))
			_, err := p.verifier().VerifyBundle(h, [][]byte{der})
			mustContain(t, err, c.want)
		})
	}
}
