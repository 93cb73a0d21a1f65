package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// CMS is a parsed CMS SignedData (RFC 5652) with attached content: one
// bundle signature. Parsing checks the structure only; Verifier checks the
// cryptography and the trust chain.
type CMS struct {
	Content      []byte // the encapsulated content (eContent)
	Certificates []*x509.Certificate
	Signers      []*SignerInfo

	contentType []byte // encoded eContentType OID
	digestAlgs  [][]byte
}

// SignerInfo is one signer of a CMS SignedData.
type SignerInfo struct {
	// Cert is the embedded certificate the signer identifier names, nil
	// when the signature does not carry it.
	Cert *x509.Certificate
	// SigningTime is the signer's claim, zero when absent. It is shown, never
	// trusted: a signer can write any time it likes.
	SigningTime time.Time

	issuer      []byte   // IssuerAndSerialNumber identifier ...
	serial      *big.Int // ... or
	ski         []byte   // SubjectKeyIdentifier identifier
	digest      algorithm
	sigAlg      algorithm
	signedAttrs []byte // the [0] IMPLICIT element exactly as encoded; nil when absent
	attrs       []attribute
	signature   []byte
}

type attribute struct {
	oid    []byte
	values []element
}

// DigestAlgorithm names the signer's digest algorithm.
func (s *SignerInfo) DigestAlgorithm() string { return oidString(s.digest.oid) }

// SignatureAlgorithm names the signer's signature algorithm.
func (s *SignerInfo) SignatureAlgorithm() string { return oidString(s.sigAlg.oid) }

// HasSignedAttributes reports whether the signature covers signed
// attributes (openssl's default) rather than the content directly.
func (s *SignerInfo) HasSignedAttributes() bool { return s.signedAttrs != nil }

// MaxCMSSize bounds a single signature; real ones are a few kilobytes.
const MaxCMSSize = 1 << 20

// ParseCMS parses a DER ContentInfo holding a SignedData with attached
// content. Only DER is accepted, which is what openssl -outform DER writes.
func ParseCMS(der []byte) (*CMS, error) {
	c, err := parseCMS(der)
	if err != nil {
		return nil, fmt.Errorf("malformed CMS signature: %w", err)
	}
	return c, nil
}

func parseCMS(der []byte) (*CMS, error) {
	if len(der) > MaxCMSSize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", len(der), MaxCMSSize)
	}
	ci, err := parseOne(der)
	if err != nil {
		return nil, err
	}
	if err := ci.expect(tagSequence, "ContentInfo"); err != nil {
		return nil, err
	}
	cs, err := ci.children()
	if err != nil {
		return nil, err
	}
	if len(cs) != 2 || cs[0].tag != tagOID || cs[1].tag != tagContext0 {
		return nil, errors.New("ContentInfo is not {contentType, [0] content}")
	}
	if !bytes.Equal(cs[0].full, oidSignedData) {
		return nil, fmt.Errorf("content type is %s, not id-signedData", oidString(cs[0].full))
	}
	inner, err := cs[1].children()
	if err != nil {
		return nil, err
	}
	if len(inner) != 1 {
		return nil, errors.New("ContentInfo content is not a single SignedData")
	}
	if err := inner[0].expect(tagSequence, "SignedData"); err != nil {
		return nil, err
	}
	return parseSignedData(inner[0])
}

func parseSignedData(sd element) (*CMS, error) {
	fs, err := sd.children()
	if err != nil {
		return nil, err
	}
	if len(fs) < 4 {
		return nil, errors.New("SignedData has too few fields")
	}
	c := &CMS{}
	if v, err := fs[0].smallInt("SignedData version"); err != nil {
		return nil, err
	} else if v > 5 {
		return nil, fmt.Errorf("SignedData version %d", v)
	}
	if err := fs[1].expect(tagSet, "SignedData digestAlgorithms"); err != nil {
		return nil, err
	}
	das, err := fs[1].children()
	if err != nil {
		return nil, err
	}
	for _, d := range das {
		a, err := parseAlgorithm(d, "digest algorithm")
		if err != nil {
			return nil, err
		}
		c.digestAlgs = append(c.digestAlgs, a.oid)
	}
	if err := parseEncap(fs[2], c); err != nil {
		return nil, err
	}
	rest := fs[3:]
	if len(rest) > 0 && rest[0].tag == tagContext0 {
		certs, err := rest[0].children()
		if err != nil {
			return nil, fmt.Errorf("certificates: %w", err)
		}
		for i, ce := range certs {
			if ce.tag != tagSequence {
				continue // attribute or other certificate formats: not used
			}
			cert, err := x509.ParseCertificate(ce.full)
			if err != nil {
				return nil, fmt.Errorf("embedded certificate %d: %w", i+1, err)
			}
			c.Certificates = append(c.Certificates, cert)
		}
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0].tag == tagContext1 {
		rest = rest[1:] // revocation information: not used
	}
	if len(rest) != 1 {
		return nil, errors.New("SignedData: unexpected fields after the certificates")
	}
	if err := rest[0].expect(tagSet, "SignedData signerInfos"); err != nil {
		return nil, err
	}
	sis, err := rest[0].children()
	if err != nil {
		return nil, err
	}
	if len(sis) == 0 {
		return nil, errors.New("SignedData has no signer")
	}
	for i, se := range sis {
		si, err := parseSignerInfo(se)
		if err != nil {
			return nil, fmt.Errorf("signer %d: %w", i+1, err)
		}
		si.Cert = c.findCert(si)
		c.Signers = append(c.Signers, si)
	}
	return c, nil
}

func parseEncap(e element, c *CMS) error {
	if err := e.expect(tagSequence, "EncapsulatedContentInfo"); err != nil {
		return err
	}
	fs, err := e.children()
	if err != nil {
		return err
	}
	if len(fs) == 0 || fs[0].tag != tagOID {
		return errors.New("EncapsulatedContentInfo has no content type")
	}
	c.contentType = fs[0].full
	if len(fs) == 1 {
		return errors.New("no attached content (a detached signature; sign with -nodetach)")
	}
	if len(fs) != 2 || fs[1].tag != tagContext0 {
		return errors.New("malformed EncapsulatedContentInfo")
	}
	oc, err := fs[1].children()
	if err != nil {
		return err
	}
	if len(oc) != 1 || oc[0].tag != tagOctetString {
		return errors.New("eContent is not a single primitive OCTET STRING")
	}
	c.Content = oc[0].body
	return nil
}

func parseSignerInfo(e element) (*SignerInfo, error) {
	if err := e.expect(tagSequence, "SignerInfo"); err != nil {
		return nil, err
	}
	fs, err := e.children()
	if err != nil {
		return nil, err
	}
	if len(fs) < 5 {
		return nil, errors.New("SignerInfo has too few fields")
	}
	si := &SignerInfo{}
	if v, err := fs[0].smallInt("SignerInfo version"); err != nil {
		return nil, err
	} else if v != 1 && v != 3 {
		return nil, fmt.Errorf("SignerInfo version %d", v)
	}
	switch fs[1].tag {
	case tagSequence:
		ias, err := fs[1].children()
		if err != nil {
			return nil, err
		}
		if len(ias) != 2 || ias[0].tag != tagSequence || ias[1].tag != tagInteger {
			return nil, errors.New("malformed IssuerAndSerialNumber")
		}
		si.issuer = ias[0].full
		si.serial = new(big.Int)
		if _, err := asn1.Unmarshal(ias[1].full, &si.serial); err != nil {
			return nil, fmt.Errorf("signer serial number: %w", err)
		}
	case tagContextP0:
		si.ski = fs[1].body
	default:
		return nil, fmt.Errorf("unknown signer identifier (DER tag %#02x)", fs[1].tag)
	}
	if si.digest, err = parseAlgorithm(fs[2], "digest algorithm"); err != nil {
		return nil, err
	}
	rest := fs[3:]
	if rest[0].tag == tagContext0 {
		si.signedAttrs = rest[0].full
		if si.attrs, err = parseAttributes(rest[0]); err != nil {
			return nil, err
		}
		rest = rest[1:]
	}
	if len(rest) < 2 {
		return nil, errors.New("SignerInfo has too few fields")
	}
	if si.sigAlg, err = parseAlgorithm(rest[0], "signature algorithm"); err != nil {
		return nil, err
	}
	if err := rest[1].expect(tagOctetString, "signature"); err != nil {
		return nil, err
	}
	si.signature = rest[1].body
	rest = rest[2:]
	if len(rest) > 0 && rest[0].tag == tagContext1 {
		rest = rest[1:] // unsigned attributes: not covered by the signature, not used
	}
	if len(rest) != 0 {
		return nil, errors.New("unexpected fields at the end of SignerInfo")
	}
	for _, a := range si.attrs {
		if bytes.Equal(a.oid, oidSigningTime) && len(a.values) == 1 {
			var t time.Time
			if _, err := asn1.Unmarshal(a.values[0].full, &t); err == nil {
				si.SigningTime = t
			}
		}
	}
	return si, nil
}

func parseAttributes(e element) ([]attribute, error) {
	as, err := e.children()
	if err != nil {
		return nil, fmt.Errorf("signed attributes: %w", err)
	}
	if len(as) == 0 {
		return nil, errors.New("empty signed attributes")
	}
	var out []attribute
	seen := map[string]bool{}
	for _, ae := range as {
		fs, err := ae.children()
		if err != nil || ae.tag != tagSequence || len(fs) != 2 || fs[0].tag != tagOID || fs[1].tag != tagSet {
			return nil, errors.New("malformed signed attribute")
		}
		if seen[string(fs[0].full)] {
			return nil, fmt.Errorf("signed attribute %s appears twice", oidString(fs[0].full))
		}
		seen[string(fs[0].full)] = true
		vs, err := fs[1].children()
		if err != nil {
			return nil, fmt.Errorf("signed attribute %s: %w", oidString(fs[0].full), err)
		}
		out = append(out, attribute{oid: fs[0].full, values: vs})
	}
	return out, nil
}

// findCert returns the embedded certificate named by the signer identifier.
func (c *CMS) findCert(si *SignerInfo) *x509.Certificate {
	for _, cert := range c.Certificates {
		if si.ski != nil {
			if len(cert.SubjectKeyId) > 0 && bytes.Equal(cert.SubjectKeyId, si.ski) {
				return cert
			}
		} else if bytes.Equal(cert.RawIssuer, si.issuer) && cert.SerialNumber.Cmp(si.serial) == 0 {
			return cert
		}
	}
	return nil
}

// attr returns the single value of a signed attribute, or an error naming
// what is wrong with it.
func (s *SignerInfo) attr(oid []byte) (element, error) {
	for _, a := range s.attrs {
		if bytes.Equal(a.oid, oid) {
			if len(a.values) != 1 {
				return element{}, fmt.Errorf("%s attribute has %d values, want 1", oidString(oid), len(a.values))
			}
			return a.values[0], nil
		}
	}
	return element{}, fmt.Errorf("%s attribute is missing from the signed attributes", oidString(oid))
}

// checkSignature verifies the signer's signature over the content with its
// embedded certificate's key (RFC 5652 §5.4 and §5.6). It does not look at
// the certificate chain.
func (c *CMS) checkSignature(si *SignerInfo) error {
	if si.Cert == nil {
		return errors.New("signer certificate is not embedded in the signature")
	}
	if !bytes.Equal(c.contentType, oidData) {
		return fmt.Errorf("content type is %s, want id-data", oidString(c.contentType))
	}
	h, ok := hashByOID(si.digest.oid)
	if !ok || !si.digest.paramsAbsentOrNull() {
		return fmt.Errorf("unsupported digest algorithm %s", oidString(si.digest.oid))
	}
	listed := false
	for _, d := range c.digestAlgs {
		listed = listed || bytes.Equal(d, si.digest.oid)
	}
	if !listed {
		return fmt.Errorf("digest algorithm %s is not listed in the SignedData", oidString(si.digest.oid))
	}
	msg := c.Content
	if si.signedAttrs != nil {
		ct, err := si.attr(oidContentType)
		if err != nil {
			return err
		}
		if !bytes.Equal(ct.full, c.contentType) {
			return fmt.Errorf("content-type attribute %s does not match the content type %s", oidString(ct.full), oidString(c.contentType))
		}
		md, err := si.attr(oidMessageDigest)
		if err != nil {
			return err
		}
		hh := h.New()
		hh.Write(c.Content)
		if md.tag != tagOctetString || !bytes.Equal(md.body, hh.Sum(nil)) {
			return errors.New("message-digest attribute does not match the content")
		}
		// The signature covers the attributes encoded as a SET OF, not with
		// the [0] IMPLICIT tag they carry in the SignerInfo.
		msg = append([]byte{tagSet}, si.signedAttrs[1:]...)
	}
	return verifyWithKey(si.Cert.PublicKey, si.sigAlg, h, msg, si.signature)
}

var errBadSignature = errors.New("signature does not verify with the signer certificate's key")

// verifyWithKey checks sig over msg. digestHash is the SignerInfo digest
// algorithm, used when the signature algorithm does not name a hash itself
// (rsaEncryption, as openssl writes for PKCS#1 v1.5).
func verifyWithKey(pub crypto.PublicKey, alg algorithm, digestHash crypto.Hash, msg, sig []byte) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return fmt.Errorf("unsupported ECDSA curve %s (P-256 and P-384 are)", pub.Curve.Params().Name)
		}
		var h crypto.Hash
		switch string(alg.oid) {
		case string(oidECDSAWithSHA256):
			h = crypto.SHA256
		case string(oidECDSAWithSHA384):
			h = crypto.SHA384
		case string(oidECDSAWithSHA512):
			h = crypto.SHA512
		default:
			return fmt.Errorf("signature algorithm %s does not fit the signer's ECDSA key", oidString(alg.oid))
		}
		if alg.params != nil {
			return fmt.Errorf("signature algorithm %s has parameters", oidString(alg.oid))
		}
		if !ecdsa.VerifyASN1(pub, hashOf(h, msg), sig) {
			return errBadSignature
		}
		return nil
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("RSA key of %d bits (2048 to 8192 are supported)", n)
		}
		var h crypto.Hash
		switch string(alg.oid) {
		case string(oidRSAEncryption):
			h = digestHash
		case string(oidSHA256WithRSA):
			h = crypto.SHA256
		case string(oidSHA384WithRSA):
			h = crypto.SHA384
		case string(oidSHA512WithRSA):
			h = crypto.SHA512
		case string(oidRSAPSS):
			opts, err := parsePSSParams(alg.params)
			if err != nil {
				return err
			}
			if rsa.VerifyPSS(pub, opts.Hash, hashOf(opts.Hash, msg), sig, opts) != nil {
				return errBadSignature
			}
			return nil
		default:
			return fmt.Errorf("signature algorithm %s does not fit the signer's RSA key", oidString(alg.oid))
		}
		if !alg.paramsAbsentOrNull() {
			return fmt.Errorf("signature algorithm %s has parameters", oidString(alg.oid))
		}
		if rsa.VerifyPKCS1v15(pub, h, hashOf(h, msg), sig) != nil {
			return errBadSignature
		}
		return nil
	case ed25519.PublicKey:
		if !bytes.Equal(alg.oid, oidEd25519) || alg.params != nil {
			return fmt.Errorf("signature algorithm %s does not fit the signer's Ed25519 key", oidString(alg.oid))
		}
		if !ed25519.Verify(pub, msg, sig) {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("unsupported signer key type %T", pub)
}

func hashOf(h crypto.Hash, msg []byte) []byte {
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// parsePSSParams decodes RSASSA-PSS-params (RFC 4055). The SHA-1 defaults
// are refused, so the hash must be given; MGF1 must use the same hash.
func parsePSSParams(params []byte) (*rsa.PSSOptions, error) {
	if params == nil {
		return nil, errors.New("RSA-PSS without parameters (SHA-1) is not supported")
	}
	e, err := parseOne(params)
	if err != nil || e.tag != tagSequence {
		return nil, errors.New("malformed RSA-PSS parameters")
	}
	fs, err := e.children()
	if err != nil {
		return nil, errors.New("malformed RSA-PSS parameters")
	}
	opts := &rsa.PSSOptions{SaltLength: 20}
	var mgfHash crypto.Hash
	last := -1
	for _, f := range fs {
		n := int(f.tag) - tagContext0
		if n <= last || n > 3 {
			return nil, errors.New("malformed RSA-PSS parameters")
		}
		last = n
		inner, err := f.children()
		if err != nil || len(inner) != 1 {
			return nil, errors.New("malformed RSA-PSS parameters")
		}
		switch n {
		case 0:
			a, err := parseAlgorithm(inner[0], "RSA-PSS hash")
			if err != nil {
				return nil, err
			}
			h, ok := hashByOID(a.oid)
			if !ok || !a.paramsAbsentOrNull() {
				return nil, fmt.Errorf("unsupported RSA-PSS hash %s", oidString(a.oid))
			}
			opts.Hash = h
		case 1:
			a, err := parseAlgorithm(inner[0], "RSA-PSS mask generation")
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(a.oid, oidMGF1) || a.params == nil {
				return nil, fmt.Errorf("unsupported RSA-PSS mask generation %s", oidString(a.oid))
			}
			pe, err := parseOne(a.params)
			if err != nil {
				return nil, errors.New("malformed RSA-PSS MGF1 parameters")
			}
			ha, err := parseAlgorithm(pe, "RSA-PSS MGF1 hash")
			if err != nil {
				return nil, err
			}
			h, ok := hashByOID(ha.oid)
			if !ok {
				return nil, fmt.Errorf("unsupported RSA-PSS MGF1 hash %s", oidString(ha.oid))
			}
			mgfHash = h
		case 2:
			if opts.SaltLength, err = inner[0].smallInt("RSA-PSS salt length"); err != nil {
				return nil, err
			}
		case 3:
			if t, err := inner[0].smallInt("RSA-PSS trailer field"); err != nil || t != 1 {
				return nil, errors.New("RSA-PSS trailer field is not 1")
			}
		}
	}
	if opts.Hash == 0 || mgfHash == 0 {
		return nil, errors.New("RSA-PSS with SHA-1 defaults is not supported")
	}
	if mgfHash != opts.Hash {
		return nil, errors.New("RSA-PSS MGF1 hash differs from the signature hash")
	}
	if opts.SaltLength == 0 {
		// rsa.PSSOptions would read 0 as "any length".
		return nil, errors.New("RSA-PSS with an empty salt is not supported")
	}
	return opts, nil
}
