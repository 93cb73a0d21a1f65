package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/cli"
	"github.com/bascule-ota/bascule/internal/sign"
)

// readBundleHeader opens a bundle just far enough to know its header and
// signatures.
func readBundleHeader(path string) (*bundle.Reader, error) {
	r, f, err := openBundle(path, "")
	if err != nil {
		return nil, err
	}
	f.Close()
	return r, nil
}

func sigPrepare(args []string) error {
	fs := flag.NewFlagSet("signatures prepare", flag.ContinueOnError)
	pos, err := tool.Parse("signatures prepare", fs, args, 2, 2)
	if err != nil {
		return err
	}
	r, err := readBundleHeader(pos[0])
	if err != nil {
		return err
	}
	return os.WriteFile(pos[1], bundle.EncodeSignedMetadata(r.HeaderHash), 0o644)
}

// readCMS reads a signature file: DER, or PEM (-outform PEM) for
// convenience.
func readCMS(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		b, _ := pem.Decode(data)
		if b == nil || (b.Type != "CMS" && b.Type != "PKCS7") {
			return nil, fmt.Errorf("%s: no CMS or PKCS7 block in the PEM data", path)
		}
		return b.Bytes, nil
	}
	return data, nil
}

func sigAdd(args []string) error {
	fs := flag.NewFlagSet("signatures add", flag.ContinueOnError)
	pos, err := tool.Parse("signatures add", fs, args, 3, 3)
	if err != nil {
		return err
	}
	der, err := readCMS(pos[1])
	if err != nil {
		return err
	}
	return bundle.Resign(pos[0], pos[2], func(r *bundle.Reader) ([][]byte, error) {
		if _, err := sign.CheckSignature(der, r.HeaderRaw, r.Header.HashAlg); err != nil {
			return nil, fmt.Errorf("signature %s rejected: %w", pos[1], err)
		}
		for _, have := range r.Signatures {
			if bytes.Equal(have, der) {
				return nil, fmt.Errorf("signature %s: the bundle already carries it", pos[1])
			}
		}
		return append(r.Signatures, der), nil
	})
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func sigSign(args []string) error {
	fs := flag.NewFlagSet("signatures sign", flag.ContinueOnError)
	var inter multiFlag
	fs.Var(&inter, "intermediate-cert", "intermediate `certificate` to embed (repeatable; certificates after the first in <cert> are embedded too)")
	pss := fs.Bool("rsa-pss", false, "sign with RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys)")
	pos, err := tool.Parse("signatures sign", fs, args, 4, 4)
	if err != nil {
		return err
	}
	certs, err := sign.LoadCertificates(pos[1])
	if err != nil {
		return err
	}
	key, err := sign.LoadKey(pos[2])
	if err != nil {
		return err
	}
	s := &sign.Signer{Key: key, Cert: certs[0], Intermediates: certs[1:], PSS: *pss}
	for _, p := range inter {
		cs, err := sign.LoadCertificates(p)
		if err != nil {
			return err
		}
		s.Intermediates = append(s.Intermediates, cs...)
	}
	if err := sign.CheckSignerCert(s.Cert); err != nil {
		return fmt.Errorf("sign: devices would refuse this certificate: %w", err)
	}
	if now := time.Now(); now.Before(s.Cert.NotBefore) || now.After(s.Cert.NotAfter) {
		fmt.Fprintf(os.Stderr, "bascule-bundler: warning: signer certificate is valid from %s to %s only\n",
			s.Cert.NotBefore.UTC().Format(time.RFC3339), s.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return bundle.Resign(pos[0], pos[3], func(r *bundle.Reader) ([][]byte, error) {
		der, err := s.Sign(bundle.EncodeSignedMetadata(r.HeaderHash))
		if err != nil {
			return nil, err
		}
		return append(r.Signatures, der), nil
	})
}

type signerJSON struct {
	Subject            string     `json:"subject,omitempty"`
	Issuer             string     `json:"issuer,omitempty"`
	Serial             string     `json:"serial,omitempty"`
	NotBefore          *time.Time `json:"notBefore,omitempty"`
	NotAfter           *time.Time `json:"notAfter,omitempty"`
	DigestAlgorithm    string     `json:"digestAlgorithm"`
	SignatureAlgorithm string     `json:"signatureAlgorithm"`
	SignedAttributes   bool       `json:"signedAttributes"`
	SigningTime        *time.Time `json:"signingTime,omitempty"`
}

type signatureJSON struct {
	Index            int          `json:"index"` // from 1, as in messages
	Size             int          `json:"size"`
	SignedHeaderHash string       `json:"signedHeaderHash,omitempty"`
	MatchesBundle    bool         `json:"matchesBundle"`
	SignatureValid   bool         `json:"signatureValid"` // with the embedded certificate; trust not checked
	Certificates     int          `json:"certificates"`
	Signers          []signerJSON `json:"signers,omitempty"`
	Problem          string       `json:"problem,omitempty"`
}

func describeSignature(i int, der []byte, r *bundle.Reader) signatureJSON {
	out := signatureJSON{Index: i + 1, Size: len(der)}
	c, err := sign.ParseCMS(der)
	if err != nil {
		out.Problem = err.Error()
		return out
	}
	out.Certificates = len(c.Certificates)
	for _, si := range c.Signers {
		sj := signerJSON{DigestAlgorithm: si.DigestAlgorithm(), SignatureAlgorithm: si.SignatureAlgorithm(), SignedAttributes: si.HasSignedAttributes()}
		if !si.SigningTime.IsZero() {
			t := si.SigningTime.UTC()
			sj.SigningTime = &t
		}
		if cert := si.Cert; cert != nil {
			nb, na := cert.NotBefore.UTC(), cert.NotAfter.UTC()
			sj.Subject, sj.Issuer, sj.Serial = cert.Subject.String(), cert.Issuer.String(), cert.SerialNumber.Text(16)
			sj.NotBefore, sj.NotAfter = &nb, &na
		}
		out.Signers = append(out.Signers, sj)
	}
	d, err := c.SignedHeaderHash()
	if err != nil {
		out.Problem = err.Error()
		return out
	}
	out.SignedHeaderHash = d.String()
	out.MatchesBundle = bytes.Equal(d.Sum, d.Alg.Sum(r.HeaderRaw))
	if err := c.VerifySignature(); err != nil {
		out.Problem = err.Error()
	} else {
		out.SignatureValid = true
	}
	if !out.MatchesBundle && out.Problem == "" {
		out.Problem = sign.ErrOtherBundle.Error()
	}
	return out
}

func sigList(args []string) error {
	fs := flag.NewFlagSet("signatures list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := tool.Parse("signatures list", fs, args, 1, 1)
	if err != nil {
		return err
	}
	r, err := readBundleHeader(pos[0])
	if err != nil {
		return err
	}
	list := []signatureJSON{}
	for i, der := range r.Signatures {
		list = append(list, describeSignature(i, der, r))
	}
	if *asJSON {
		return cli.PrintJSON(map[string]any{"headerHash": r.HeaderHash.String(), "signatures": list}, true)
	}
	fmt.Printf("Header hash: %s\nSignatures:  %d\n", r.HeaderHash, len(list))
	for _, s := range list {
		fmt.Printf("Signature %d: %d bytes, %d certificates\n", s.Index, s.Size, s.Certificates)
		for _, si := range s.Signers {
			if si.Subject != "" {
				fmt.Printf("  signer:    %s\n  issuer:    %s\n  valid:     %s to %s\n", si.Subject, si.Issuer,
					si.NotBefore.Format(time.RFC3339), si.NotAfter.Format(time.RFC3339))
			} else {
				fmt.Printf("  signer:    (certificate not embedded)\n")
			}
			fmt.Printf("  algorithm: %s with %s digest\n", si.SignatureAlgorithm, si.DigestAlgorithm)
			if si.SigningTime != nil {
				fmt.Printf("  signed at: %s (claimed by the signer)\n", si.SigningTime.Format(time.RFC3339))
			}
		}
		if s.SignedHeaderHash != "" {
			fmt.Printf("  signs:     %s\n", s.SignedHeaderHash)
		}
		if s.Problem != "" {
			fmt.Printf("  PROBLEM:   %s\n", s.Problem)
		}
	}
	return nil
}

// parseTime accepts RFC 3339 or a plain date.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q (want 2006-01-02 or RFC 3339)", s)
}

func sigVerify(args []string) error {
	fs := flag.NewFlagSet("signatures verify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	at := fs.String("at", "", "check certificate validity at this time instead of now (2006-01-02 or RFC 3339)")
	pos, err := tool.Parse("signatures verify", fs, args, 2, -1)
	if err != nil {
		return err
	}
	roots, err := sign.LoadRoots(pos[1:]...)
	if err != nil {
		return err
	}
	v := &sign.Verifier{Roots: roots}
	if *at != "" {
		t, err := parseTime(*at)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		v.Now = func() time.Time { return t }
		v.ClockFloor = time.Unix(0, 0) // an explicit time is a set clock
	}
	r, err := readBundleHeader(pos[0])
	if err != nil {
		return err
	}
	res, err := v.VerifyReader(r)
	if err != nil {
		return fmt.Errorf("bundle rejected: %s: %w", pos[0], err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(os.Stderr, "bascule-bundler: warning: %s\n", w)
	}
	var chain []string
	for _, c := range res.Chain {
		chain = append(chain, c.Subject.String())
	}
	if *asJSON {
		rejected := []string{}
		for _, e := range res.Rejected {
			rejected = append(rejected, e.Error())
		}
		return cli.PrintJSON(map[string]any{"headerHash": r.HeaderHash.String(), "verified": true, "signature": res.Index + 1,
			"chain": chain, "warnings": append([]string{}, res.Warnings...), "rejected": rejected}, true)
	}
	for _, e := range res.Rejected {
		fmt.Printf("rejected %v\n", e)
	}
	fmt.Printf("OK: signature %d verified: %s\n", res.Index+1, strings.Join(chain, " <- "))
	return nil
}

// writeNew writes a file that must not exist yet, so that keys are never
// overwritten by accident.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeKeyAndCert writes a new key (0600) and its certificate chain.
func writeKeyAndCert(keyPath, certPath string, key crypto.Signer, certs ...*x509.Certificate) error {
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite", p)
		}
	}
	kp, err := sign.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, kp, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, sign.EncodeCertificatesPEM(certs...), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

func validity(days int) (time.Time, error) {
	if days < 0 {
		return time.Time{}, errors.New("--days must be positive")
	}
	if days == 0 {
		return time.Time{}, nil
	}
	return time.Now().Add(-time.Hour).Add(time.Duration(days) * 24 * time.Hour).Truncate(time.Second), nil
}

func keysCreateCA(args []string) error {
	fs := flag.NewFlagSet("keys create-ca", flag.ContinueOnError)
	alg := fs.String("algorithm", sign.ECDSAP256, "key algorithm: "+strings.Join(sign.KeyAlgorithms, ", "))
	name := fs.String("name", "Bascule Root CA", "common name of the root certificate")
	days := fs.Int("days", 0, "validity in days (default 20 years)")
	outCert := fs.String("out-cert", "", "where to write the root certificate (PEM); required")
	outKey := fs.String("out-key", "", "where to write the root private key (PEM, mode 0600); required")
	if _, err := tool.Parse("keys create-ca", fs, args, 0, 0); err != nil {
		return err
	}
	if *outCert == "" || *outKey == "" {
		return errors.New("keys create-ca: --out-cert and --out-key are required")
	}
	na, err := validity(*days)
	if err != nil {
		return err
	}
	key, err := sign.GenerateKey(*alg)
	if err != nil {
		return err
	}
	cert, err := sign.NewRootCA(key, sign.CertSpec{CommonName: *name, NotAfter: na})
	if err != nil {
		return err
	}
	return writeKeyAndCert(*outKey, *outCert, key, cert)
}

// parseEKU reads --eku: "none" or a comma list of codeSigning and
// emailProtection.
func parseEKU(s string) ([]x509.ExtKeyUsage, error) {
	out := []x509.ExtKeyUsage{}
	if s == "none" {
		return out, nil
	}
	for _, n := range strings.Split(s, ",") {
		switch strings.TrimSpace(n) {
		case "codeSigning":
			out = append(out, x509.ExtKeyUsageCodeSigning)
		case "emailProtection":
			out = append(out, x509.ExtKeyUsageEmailProtection)
		default:
			return nil, fmt.Errorf("--eku: unknown usage %q (want codeSigning, emailProtection or none)", n)
		}
	}
	return out, nil
}

func keysCreateSigner(args []string) error {
	fs := flag.NewFlagSet("keys create-signer", flag.ContinueOnError)
	caCert := fs.String("ca-cert", "", "certificate of the issuing CA (root or intermediate); required")
	caKey := fs.String("ca-key", "", "private key of the issuing CA; required")
	inter := fs.Bool("intermediate", false, "create an intermediate CA instead of a signer")
	alg := fs.String("algorithm", sign.ECDSAP256, "key algorithm: "+strings.Join(sign.KeyAlgorithms, ", "))
	name := fs.String("name", "", `common name (default "Bascule Bundle Signer" or "Bascule Intermediate CA")`)
	days := fs.Int("days", 0, "validity in days (default 5 years for signers, 10 for intermediates, capped at the CA's)")
	eku := fs.String("eku", "codeSigning,emailProtection", "extended key usage of a signer: codeSigning, emailProtection (for openssl cms -verify, i.e. Rugix 0.8), or none")
	outCert := fs.String("out-cert", "", "where to write the certificate (PEM, followed by the issuing intermediates); required")
	outKey := fs.String("out-key", "", "where to write the private key (PEM, mode 0600); required")
	if _, err := tool.Parse("keys create-signer", fs, args, 0, 0); err != nil {
		return err
	}
	if *caCert == "" || *caKey == "" || *outCert == "" || *outKey == "" {
		return errors.New("keys create-signer: --ca-cert, --ca-key, --out-cert and --out-key are required")
	}
	usage, err := parseEKU(*eku)
	if err != nil {
		return err
	}
	na, err := validity(*days)
	if err != nil {
		return err
	}
	cas, err := sign.LoadCertificates(*caCert)
	if err != nil {
		return err
	}
	ca := cas[0]
	if !ca.IsCA {
		return fmt.Errorf("%s: %q is not a CA certificate", *caCert, ca.Subject.CommonName)
	}
	cakey, err := sign.LoadKey(*caKey)
	if err != nil {
		return err
	}
	if pub, ok := cakey.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(ca.PublicKey) {
		return fmt.Errorf("%s does not belong to the certificate in %s", *caKey, *caCert)
	}
	key, err := sign.GenerateKey(*alg)
	if err != nil {
		return err
	}
	spec := sign.CertSpec{CommonName: *name, NotAfter: na, ExtKeyUsage: usage}
	var cert *x509.Certificate
	if *inter {
		if spec.CommonName == "" {
			spec.CommonName = "Bascule Intermediate CA"
		}
		cert, err = sign.NewIntermediateCA(ca, cakey, key.Public(), spec)
	} else {
		if spec.CommonName == "" {
			spec.CommonName = "Bascule Bundle Signer"
		}
		cert, err = sign.NewSignerCert(ca, cakey, key.Public(), spec)
	}
	if err != nil {
		return err
	}
	// The certificate file carries the intermediates up to (not including)
	// the root, so that `signatures sign` embeds the whole chain.
	chain := []*x509.Certificate{cert}
	for _, c := range cas {
		if !isSelfSigned(c) {
			chain = append(chain, c)
		}
	}
	return writeKeyAndCert(*outKey, *outCert, key, chain...)
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}
