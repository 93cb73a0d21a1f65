package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Key algorithms GenerateKey offers. They are exactly the ones Rugix 1.x
// verifies.
const (
	ECDSAP256 = "ecdsa-p256"
	ECDSAP384 = "ecdsa-p384"
	Ed25519   = "ed25519"
	RSA2048   = "rsa-2048"
	RSA3072   = "rsa-3072"
	RSA4096   = "rsa-4096"
)

// KeyAlgorithms lists the names GenerateKey accepts, default first.
var KeyAlgorithms = []string{ECDSAP256, ECDSAP384, Ed25519, RSA2048, RSA3072, RSA4096}

// GenerateKey makes a new private key.
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key algorithm %q (want one of %v)", alg, KeyAlgorithms)
}

// DefaultSignerEKU is the extended key usage of signer certificates made by
// NewSignerCert. codeSigning is what Rugix 1.x and Bascule require when an
// EKU is present; emailProtection is there because `openssl cms -verify`
// (how Rugix 0.8 verifies) checks the S/MIME signing purpose by default and
// refuses an EKU without it.
var DefaultSignerEKU = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageEmailProtection}

// Default validity periods.
const (
	RootValidity         = 20 * 365 * 24 * time.Hour
	IntermediateValidity = 10 * 365 * 24 * time.Hour
	SignerValidity       = 5 * 365 * 24 * time.Hour
)

// CertSpec says what certificate to make.
type CertSpec struct {
	CommonName string
	// NotBefore defaults to an hour ago, so that a signer whose clock is a
	// little behind can use the certificate at once.
	NotBefore time.Time
	// NotAfter defaults to NotBefore plus the default validity of the kind
	// of certificate. It is capped at the issuer's NotAfter.
	NotAfter time.Time
	// ExtKeyUsage of a signer certificate; nil means DefaultSignerEKU, an
	// empty non-nil slice means none.
	ExtKeyUsage []x509.ExtKeyUsage
}

func (s CertSpec) template(validity time.Duration, issuer *x509.Certificate) (*x509.Certificate, error) {
	if s.CommonName == "" {
		return nil, errors.New("certificate needs a common name")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	nb := s.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour).Truncate(time.Second)
	}
	na := s.NotAfter
	if na.IsZero() {
		na = nb.Add(validity)
	}
	if issuer != nil && na.After(issuer.NotAfter) {
		na = issuer.NotAfter // a chain is invalid once its issuer expires anyway
	}
	if !na.After(nb) {
		return nil, errors.New("certificate would expire before it becomes valid")
	}
	return &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: s.CommonName},
		NotBefore:             nb,
		NotAfter:              na,
		BasicConstraintsValid: true,
	}, nil
}

// NewRootCA makes a self-signed root certificate for key.
func NewRootCA(key crypto.Signer, spec CertSpec) (*x509.Certificate, error) {
	t, err := spec.template(RootValidity, nil)
	if err != nil {
		return nil, fmt.Errorf("root certificate: %w", err)
	}
	t.IsCA = true
	t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	return create(t, t, key.Public(), key, "root certificate")
}

// NewIntermediateCA makes a CA certificate for pub, signed by the issuer,
// that may sign end-entity certificates only (path length 0).
func NewIntermediateCA(issuer *x509.Certificate, issuerKey crypto.Signer, pub crypto.PublicKey, spec CertSpec) (*x509.Certificate, error) {
	t, err := spec.template(IntermediateValidity, issuer)
	if err != nil {
		return nil, fmt.Errorf("intermediate certificate: %w", err)
	}
	t.IsCA = true
	t.MaxPathLenZero = true
	t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	return create(t, issuer, pub, issuerKey, "intermediate certificate")
}

// NewSignerCert makes a bundle-signing certificate for pub: CA:FALSE,
// keyUsage digitalSignature and spec.ExtKeyUsage.
func NewSignerCert(issuer *x509.Certificate, issuerKey crypto.Signer, pub crypto.PublicKey, spec CertSpec) (*x509.Certificate, error) {
	t, err := spec.template(SignerValidity, issuer)
	if err != nil {
		return nil, fmt.Errorf("signer certificate: %w", err)
	}
	t.KeyUsage = x509.KeyUsageDigitalSignature
	t.ExtKeyUsage = spec.ExtKeyUsage
	if t.ExtKeyUsage == nil {
		t.ExtKeyUsage = DefaultSignerEKU
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("signer certificate: %w", err)
	}
	ski := sha256.Sum256(spki) // RFC 7093 method 1 style, truncated
	t.SubjectKeyId = ski[:20]
	return create(t, issuer, pub, issuerKey, "signer certificate")
}

func create(t, issuer *x509.Certificate, pub crypto.PublicKey, issuerKey crypto.Signer, what string) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, t, issuer, pub, issuerKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}
