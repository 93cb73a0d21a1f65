package main

import (
	"crypto/sha512"
	"os"
	"path/filepath"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/sign"
)

func sha512_256(b []byte) []byte {
	s := sha512.Sum512_256(b)
	return s[:]
}

func buildBundle(t *testing.T, dir, out string) string {
	t.Helper()
	d, err := bundle.Build(dir, out, bundle.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// signBundle makes a root and a signer in dir and returns the root
// certificate's path and a signed copy of the bundle.
func signBundle(t *testing.T, dir, path string) (string, string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	caKey, _ := sign.GenerateKey("ecdsa-p256")
	ca, err := sign.NewRootCA(caKey, sign.CertSpec{CommonName: "Root " + dir})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sign.GenerateKey("ecdsa-p256")
	cert, err := sign.NewSignerCert(ca, caKey, key.Public(), sign.CertSpec{CommonName: "Signer"})
	if err != nil {
		t.Fatal(err)
	}
	rootPath := filepath.Join(dir, "root.pem")
	os.WriteFile(rootPath, sign.EncodeCertificatesPEM(ca), 0o644)
	out := filepath.Join(dir, "signed.rugixb")
	err = bundle.Resign(path, out, func(r *bundle.Reader) ([][]byte, error) {
		der, err := (&sign.Signer{Key: key, Cert: cert}).Sign(bundle.EncodeSignedMetadata(r.HeaderHash))
		return [][]byte{der}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rootPath, out
}
