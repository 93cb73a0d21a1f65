package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Signer makes bundle signatures without openssl. Its output is what
// `openssl cms -sign -nodetach -binary -nosmimecap` makes, restricted to the
// algorithm identifiers Rugix 1.x accepts: ecdsa-with-SHA256 for P-256,
// ecdsa-with-SHA384 for P-384, sha256WithRSAEncryption (or RSASSA-PSS with
// a salt as long as the hash) for RSA, id-Ed25519 with a SHA-512 message
// digest for Ed25519. Signed attributes are contentType, signingTime and
// messageDigest; the signer and intermediate certificates are embedded.
type Signer struct {
	Key           crypto.Signer // may be backed by an HSM
	Cert          *x509.Certificate
	Intermediates []*x509.Certificate
	// PSS selects RSASSA-PSS instead of PKCS#1 v1.5 for RSA keys.
	PSS bool
	// Now is the signing time written into the signature; nil means
	// time.Now. Verifiers do not trust it; it is for people reading `list`.
	Now func() time.Time
}

// signingAlg is how a key type signs.
type signingAlg struct {
	digest  crypto.Hash       // for the message-digest attribute
	sigAlg  []byte            // encoded AlgorithmIdentifier
	opts    crypto.SignerOpts // for crypto.Signer.Sign
	prehash bool              // Sign takes a digest (not Ed25519)
}

func (s *Signer) algorithm() (signingAlg, error) {
	switch pub := s.Key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return signingAlg{crypto.SHA256, tlv(tagSequence, oidECDSAWithSHA256), crypto.SHA256, true}, nil
		case elliptic.P384():
			return signingAlg{crypto.SHA384, tlv(tagSequence, oidECDSAWithSHA384), crypto.SHA384, true}, nil
		}
		return signingAlg{}, fmt.Errorf("unsupported ECDSA curve %s (use P-256 or P-384)", pub.Curve.Params().Name)
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < 2048 || n > 8192 {
			return signingAlg{}, fmt.Errorf("RSA key of %d bits (2048 to 8192 are supported)", n)
		}
		null := []byte{tagNull, 0}
		if s.PSS {
			sha := tlv(tagSequence, oidSHA256, null)
			params := tlv(tagSequence,
				tlv(tagContext0, sha),
				tlv(tagContext1, tlv(tagSequence, oidMGF1, sha)),
				tlv(tagContext2, []byte{tagInteger, 1, 32}))
			return signingAlg{crypto.SHA256, tlv(tagSequence, oidRSAPSS, params),
				&rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}, true}, nil
		}
		return signingAlg{crypto.SHA256, tlv(tagSequence, oidSHA256WithRSA, null), crypto.SHA256, true}, nil
	case ed25519.PublicKey:
		return signingAlg{crypto.SHA512, tlv(tagSequence, oidEd25519), crypto.Hash(0), false}, nil
	default:
		return signingAlg{}, fmt.Errorf("unsupported key type %T", pub)
	}
}

// Sign returns a DER CMS SignedData over content with the content attached.
func (s *Signer) Sign(content []byte) ([]byte, error) {
	if s.Key == nil || s.Cert == nil {
		return nil, errors.New("sign: key and certificate are required")
	}
	if pub, ok := s.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(s.Cert.PublicKey) {
		return nil, errors.New("sign: the private key does not belong to the signer certificate")
	}
	alg, err := s.algorithm()
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	signed := setOf(tagSet, [][]byte{
		tlv(tagSequence, oidContentType, tlv(tagSet, oidData)),
		tlv(tagSequence, oidSigningTime, tlv(tagSet, mustMarshal(now().UTC().Truncate(time.Second)))),
		tlv(tagSequence, oidMessageDigest, tlv(tagSet, tlv(tagOctetString, hashOf(alg.digest, content)))),
	})
	msg := signed
	if alg.prehash {
		msg = hashOf(alg.opts.HashFunc(), signed)
	}
	sig, err := s.Key.Sign(rand.Reader, msg, alg.opts)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	digestAlg := tlv(tagSequence, oidByHash(alg.digest))
	signedImplicit := append([]byte{tagContext0}, signed[1:]...)
	signerInfo := tlv(tagSequence,
		[]byte{tagInteger, 1, 1},
		tlv(tagSequence, s.Cert.RawIssuer, mustMarshal(s.Cert.SerialNumber)),
		digestAlg, signedImplicit, alg.sigAlg, tlv(tagOctetString, sig))
	certs := [][]byte{s.Cert.Raw}
	for _, c := range s.Intermediates {
		if !c.Equal(s.Cert) {
			certs = append(certs, c.Raw)
		}
	}
	sd := tlv(tagSequence,
		[]byte{tagInteger, 1, 1},
		tlv(tagSet, digestAlg),
		tlv(tagSequence, oidData, tlv(tagContext0, tlv(tagOctetString, content))),
		setOf(tagContext0, dedupe(certs)),
		tlv(tagSet, signerInfo))
	der := tlv(tagSequence, oidSignedData, tlv(tagContext0, sd))
	// Check our own output: a wrong key in an HSM should fail here, not on
	// the devices.
	c, err := ParseCMS(der)
	if err == nil {
		err = c.checkSignature(c.Signers[0])
	}
	if err != nil {
		return nil, fmt.Errorf("sign: produced signature does not verify: %w", err)
	}
	return der, nil
}

func dedupe(bs [][]byte) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	for _, b := range bs {
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, b)
		}
	}
	return out
}
