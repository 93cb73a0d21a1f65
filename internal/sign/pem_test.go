package sign

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadRoots(t *testing.T) {
	a := newPKI(t, pkiOptions{name: "a"})
	b := newPKI(t, pkiOptions{name: "b"})
	c := newPKI(t, pkiOptions{name: "c"})
	dir := t.TempDir()
	both := filepath.Join(dir, "both.pem")
	os.WriteFile(both, append(EncodeCertificatesPEM(a.root, b.root), "trailing text\n"...), 0o644)
	der := filepath.Join(dir, "c.der")
	os.WriteFile(der, c.root.Raw, 0o644)

	roots, err := LoadRoots(both, der)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots.Certs) != 3 {
		t.Fatalf("%d roots", len(roots.Certs))
	}

	// A directory: certificate files and c_rehash names count, others not.
	rd := filepath.Join(dir, "roots")
	os.Mkdir(rd, 0o755)
	os.WriteFile(filepath.Join(rd, "a.crt"), EncodeCertificatesPEM(a.root), 0o644)
	os.WriteFile(filepath.Join(rd, "1a2b3c4d.0"), EncodeCertificatesPEM(b.root), 0o644)
	os.WriteFile(filepath.Join(rd, "README"), []byte("not a certificate"), 0o644)
	os.WriteFile(filepath.Join(rd, ".hidden.pem"), []byte("broken"), 0o644)
	os.Mkdir(filepath.Join(rd, "sub.pem"), 0o755)
	roots, err = LoadRoots(rd, both) // a and b twice: deduplicated
	if err != nil {
		t.Fatal(err)
	}
	if len(roots.Certs) != 2 {
		t.Fatalf("%d roots from the directory", len(roots.Certs))
	}

	empty := t.TempDir()
	if _, err := LoadRoots(empty); err == nil || !strings.Contains(err.Error(), "no certificate found") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := LoadRoots(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(rd, "bad.pem")
	os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	if _, err := LoadRoots(rd); err == nil {
		t.Error("broken certificate file in the directory accepted")
	}
}

func TestParseKeyFormats(t *testing.T) {
	ec := testKey(t, ECDSAP256, "pem").(*ecdsa.PrivateKey)
	rk := testKey(t, RSA2048, "pem").(*rsa.PrivateKey)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	p8, err := EncodeKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"pkcs8":     p8,
		"sec1":      pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"pkcs1":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}),
		"params":    append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
		"der-pkcs8": func() []byte { b, _ := pem.Decode(p8); return b.Bytes }(),
	}
	for name, data := range cases {
		if _, err := ParseKey(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, k := range []string{ECDSAP384, Ed25519} {
		p, err := EncodeKeyPEM(testKey(t, k, "pem"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKey(p); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	enc := []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	if _, err := ParseKey(enc); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted key: %v", err)
	}
	if _, err := ParseKey([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("certificate accepted as a key")
	}
}

func TestCertificateProfiles(t *testing.T) {
	p := newPKI(t, pkiOptions{intermediate: true})
	if !p.root.IsCA || p.root.KeyUsage&x509.KeyUsageCertSign == 0 || !p.root.Equal(p.root) {
		t.Error("root is not a CA")
	}
	if p.root.CheckSignatureFrom(p.root) != nil {
		t.Error("root is not self-signed")
	}
	if !p.inter.IsCA || !p.inter.MaxPathLenZero || p.inter.CheckSignatureFrom(p.root) != nil {
		t.Error("intermediate profile")
	}
	l := p.leaf
	if l.IsCA || !l.BasicConstraintsValid || l.KeyUsage != x509.KeyUsageDigitalSignature || len(l.SubjectKeyId) == 0 {
		t.Errorf("signer profile: CA %v, key usage %v", l.IsCA, l.KeyUsage)
	}
	if len(l.ExtKeyUsage) != 2 || l.ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning {
		t.Errorf("signer EKU %v", l.ExtKeyUsage)
	}
	if l.NotAfter.After(p.inter.NotAfter) {
		t.Error("signer outlives its issuer")
	}
	if _, err := NewRootCA(p.rootKey, CertSpec{}); err == nil {
		t.Error("certificate without a name")
	}
	if _, err := GenerateKey("dsa-1024"); err == nil {
		t.Error("unknown algorithm accepted")
	}
}
