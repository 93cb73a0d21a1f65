package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/sign"
)

// sigBundle makes a one-payload bundle for slot and returns its path.
func sigBundle(t *testing.T, dir, slot string) string {
	t.Helper()
	src := filepath.Join(dir, "src-"+slot)
	if err := os.MkdirAll(filepath.Join(src, "payloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := "update-type = \"incremental\"\n[[payloads]]\nfilename = \"p.img\"\n[payloads.delivery]\ntype = \"slot\"\nslot = \"" + slot + "\"\n"
	if err := os.WriteFile(filepath.Join(src, "rugix-bundle.toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "payloads", "p.img"), bytes.Repeat([]byte(slot), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, slot+".rugixb")
	if _, err := bundle.Build(src, out, bundle.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sigPKI creates root, intermediate and signer with the keys command.
func sigPKI(t *testing.T, dir, alg string) (root, signerCert, signerKey string) {
	t.Helper()
	p := func(n string) string { return filepath.Join(dir, n) }
	ok(t, "keys", "create-ca", "--algorithm", alg, "--out-cert", p("root.pem"), "--out-key", p("root.key"))
	ok(t, "keys", "create-signer", "--intermediate", "--algorithm", alg, "--ca-cert", p("root.pem"), "--ca-key", p("root.key"),
		"--out-cert", p("inter.pem"), "--out-key", p("inter.key"))
	ok(t, "keys", "create-signer", "--algorithm", alg, "--ca-cert", p("inter.pem"), "--ca-key", p("inter.key"),
		"--out-cert", p("signer.pem"), "--out-key", p("signer.key"))
	return p("root.pem"), p("signer.pem"), p("signer.key")
}

func TestKeysCommand(t *testing.T) {
	dir := t.TempDir()
	root, signerCert, signerKey := sigPKI(t, dir, sign.ECDSAP256)
	for _, k := range []string{"root.key", "inter.key", "signer.key"} {
		fi, err := os.Stat(filepath.Join(dir, k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v", k, fi.Mode(), err)
		}
	}
	certs, err := sign.LoadCertificates(signerCert)
	if err != nil || len(certs) != 2 {
		t.Fatalf("signer certificate file: %d certificates, %v", len(certs), err)
	}
	if err := sign.CheckSignerCert(certs[0]); err != nil {
		t.Error(err)
	}
	if !certs[1].IsCA || certs[1].MaxPathLen != 0 || !certs[1].MaxPathLenZero {
		t.Error("intermediate is not a path-length-0 CA")
	}
	if _, err := sign.LoadKey(signerKey); err != nil {
		t.Error(err)
	}
	if _, err := sign.LoadRoots(root); err != nil {
		t.Error(err)
	}
	fails(t, "already exists", "keys", "create-ca", "--out-cert", root, "--out-key", filepath.Join(dir, "other.key"))
	fails(t, "not a CA certificate", "keys", "create-signer", "--ca-cert", signerCert, "--ca-key", signerKey,
		"--out-cert", filepath.Join(dir, "x.pem"), "--out-key", filepath.Join(dir, "x.key"))
	fails(t, "unknown key algorithm", "keys", "create-ca", "--algorithm", "dsa", "--out-cert", filepath.Join(dir, "y.pem"), "--out-key", filepath.Join(dir, "y.key"))
	fails(t, "unknown command", "keys", "create-root")
}

func TestSignaturesNative(t *testing.T) {
	for _, alg := range []string{sign.ECDSAP256, sign.ECDSAP384, sign.Ed25519, sign.RSA2048} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			root, cert, key := sigPKI(t, dir, alg)
			b := sigBundle(t, dir, "system")
			signed := filepath.Join(dir, "signed.rugixb")
			ok(t, "signatures", "sign", b, cert, key, signed)
			if out := ok(t, "signatures", "verify", signed, root); !strings.Contains(out, "OK: signature 1 verified") {
				t.Fatalf("verify: %s", out)
			}
			if alg == sign.RSA2048 {
				ok(t, "signatures", "sign", "--rsa-pss", b, cert, key, signed+".pss")
				ok(t, "signatures", "verify", signed+".pss", root)
			}
			// The payloads are untouched.
			ok(t, "verify", signed)
			opensslVerifyBundle(t, dir, signed, root)
		})
	}
}

// opensslVerifyBundle checks every signature of a bundle with rugix-ctrl
// 0.8's openssl command and compares the extracted content with what
// `signatures prepare` writes.
func opensslVerifyBundle(t *testing.T, dir, path, root string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl not in PATH; skipping the openssl check")
		return
	}
	meta := filepath.Join(dir, "check-meta.raw")
	ok(t, "signatures", "prepare", path, meta)
	want, _ := os.ReadFile(meta)
	r, err := readBundleHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, der := range r.Signatures {
		if err := os.WriteFile(filepath.Join(dir, "check.der"), der, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("openssl", "cms", "-verify", "-inform", "DER", "-in", "check.der", "-no-CAfile", "-no-CApath",
			"-no-CAstore", "-verify_retcode", "-CAfile", root, "-out", "check.raw")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil && bytes.Contains(out, []byte("invalid digest")) {
			t.Logf("signature %d: this openssl cannot verify Ed25519 CMS (fixed in 3.2)", i+1)
			continue
		}
		if err != nil {
			t.Fatalf("signature %d: openssl cms -verify: %v\n%s", i+1, err, out)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "check.raw"))
		if !bytes.Equal(got, want) {
			t.Fatalf("signature %d: openssl extracted %q, want %q", i+1, got, want)
		}
	}
}

func TestSignaturesPrepareOpenSSLAdd(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not in PATH")
	}
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	root, cert, key := sigPKI(t, dir, sign.ECDSAP256)
	b := sigBundle(t, dir, "system")
	ok(t, "signatures", "prepare", b, p("meta.raw"))
	// rugix-bundler's openssl invocation; the intermediate comes from the
	// certificate file.
	cmd := exec.Command("openssl", "cms", "-sign", "-in", "meta.raw", "-signer", "signer.pem", "-inkey", "signer.key",
		"-certfile", "inter.pem", "-outform", "DER", "-nosmimecap", "-nodetach", "-binary", "-out", "sig.der")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -sign: %v\n%s", err, out)
	}
	ok(t, "signatures", "add", b, p("sig.der"), p("one.rugixb"))
	ok(t, "signatures", "verify", p("one.rugixb"), root)
	// A second, native signature next to it.
	ok(t, "signatures", "sign", p("one.rugixb"), cert, key, p("two.rugixb"))
	out := ok(t, "signatures", "list", "--json", p("two.rugixb"))
	var list struct {
		HeaderHash string          `json:"headerHash"`
		Signatures []signatureJSON `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(list.Signatures) != 2 {
		t.Fatalf("list: %s", out)
	}
	for _, s := range list.Signatures {
		if !s.MatchesBundle || !s.SignatureValid || s.Problem != "" || s.SignedHeaderHash != list.HeaderHash || s.Certificates != 2 {
			t.Errorf("signature %d: %+v", s.Index, s)
		}
	}
	if out := ok(t, "signatures", "list", p("two.rugixb")); strings.Count(out, "signs:     "+list.HeaderHash) != 2 {
		t.Errorf("list:\n%s", out)
	}
	opensslVerifyBundle(t, dir, p("two.rugixb"), root)
	ok(t, "verify", p("two.rugixb"))

	// The same signature twice, a signature for another bundle, garbage.
	fails(t, "already carries it", "signatures", "add", p("one.rugixb"), p("sig.der"), p("x.rugixb"))
	other := sigBundle(t, dir, "other")
	fails(t, "signature is for another bundle", "signatures", "add", other, p("sig.der"), p("x.rugixb"))
	if err := os.WriteFile(p("garbage.der"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, "malformed CMS signature", "signatures", "add", b, p("garbage.der"), p("x.rugixb"))
	if _, err := os.Stat(p("x.rugixb")); !os.IsNotExist(err) {
		t.Error("output written although add failed")
	}
}

func TestSignaturesVerifyRejects(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	root, cert, key := sigPKI(t, dir, sign.ECDSAP256)
	b := sigBundle(t, dir, "system")
	ok(t, "signatures", "sign", b, cert, key, p("signed.rugixb"))

	other := t.TempDir()
	otherRoot, _, _ := sigPKI(t, other, sign.ECDSAP256)
	fails(t, "certificate signed by unknown authority", "signatures", "verify", p("signed.rugixb"), otherRoot)
	fails(t, "bundle is not signed", "signatures", "verify", b, root)
	fails(t, "expired at", "signatures", "verify", "--at", "2199-01-01", p("signed.rugixb"), root)
	// Several roots, one of them a directory.
	rootDir := filepath.Join(t.TempDir(), "roots")
	os.Mkdir(rootDir, 0o755)
	data, _ := os.ReadFile(root)
	os.WriteFile(filepath.Join(rootDir, "product.crt"), data, 0o644)
	if out := ok(t, "signatures", "verify", p("signed.rugixb"), otherRoot, rootDir); !strings.Contains(out, "<- CN=Bascule Root CA") {
		t.Errorf("verify: %s", out)
	}

	// Intermediates given separately.
	certs, err := sign.LoadCertificates(cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("leaf.pem"), sign.EncodeCertificatesPEM(certs[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, "signatures", "sign", b, p("leaf.pem"), key, p("leaf-only.rugixb"))
	fails(t, "signature 1: certificate signed by unknown authority", "signatures", "verify", p("leaf-only.rugixb"), root)
	ok(t, "signatures", "sign", "--intermediate-cert", p("inter.pem"), b, p("leaf.pem"), key, p("with-inter.rugixb"))
	ok(t, "signatures", "verify", p("with-inter.rugixb"), root)

	// A certificate devices would refuse is refused at signing time.
	ok(t, "keys", "create-signer", "--eku", "emailProtection", "--ca-cert", p("inter.pem"), "--ca-key", p("inter.key"),
		"--out-cert", p("mail.pem"), "--out-key", p("mail.key"))
	fails(t, "extended key usage does not include codeSigning", "signatures", "sign", b, p("mail.pem"), p("mail.key"), p("x.rugixb"))
	fails(t, "does not belong", "signatures", "sign", b, cert, p("mail.key"), p("x.rugixb"))
}
