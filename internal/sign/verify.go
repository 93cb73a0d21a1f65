package sign

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// clockFloor is the default ClockFloor. Builds for devices without a
// real-time clock should raise it to their build date:
//
//	-ldflags "-X github.com/bascule-ota/bascule/internal/sign.clockFloor=2025-06-30"
var clockFloor = "2025-01-01"

// DefaultClockFloor is the time before which the system clock is taken to
// be unset (see Verifier.ClockFloor).
func DefaultClockFloor() time.Time {
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, clockFloor); err == nil {
			return t
		}
	}
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
}

// Verifier decides whether a bundle is signed by a key the device trusts.
type Verifier struct {
	Roots *Roots
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// ClockFloor is the clock policy. Real time is known to be at least
	// this (the software was built after it), so a clock that reads earlier
	// has not been set yet: a device without a battery-backed clock that has
	// not synced. Then certificate validity is checked at
	// max(ClockFloor, signer's notBefore) instead of the clock: a
	// certificate that expired before the floor is still refused, one that
	// is not yet valid is accepted, and Result.Warnings says so. With the
	// clock at or after the floor, validity is enforced. Zero means
	// DefaultClockFloor().
	ClockFloor time.Time
}

// Result describes the signature that made a bundle trusted.
type Result struct {
	Index    int                 // index of the signature in the bundle (0-based)
	Signer   *x509.Certificate   // end-entity certificate
	Chain    []*x509.Certificate // signer first, trusted root last
	Content  []byte              // the signed metadata
	Warnings []string            // e.g. clock not set
	// Rejected holds the reasons for the signatures that were tried before
	// this one and refused.
	Rejected []error
}

// SignatureError is why one signature was refused.
type SignatureError struct {
	Index int // 0-based; messages count from 1
	Err   error
}

func (e *SignatureError) Error() string { return fmt.Sprintf("signature %d: %v", e.Index+1, e.Err) }
func (e *SignatureError) Unwrap() error { return e.Err }

// ErrNotSigned is returned for a bundle without signatures.
var ErrNotSigned = errors.New("bundle is not signed")

// RejectedError says that no signature of a bundle is valid, with one
// reason per signature.
type RejectedError struct {
	Reasons []*SignatureError
}

func (e *RejectedError) Error() string {
	if len(e.Reasons) == 0 {
		return ErrNotSigned.Error()
	}
	parts := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		parts[i] = r.Error()
	}
	return "no valid signature: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrNotSigned) and the per-signature causes
// visible.
func (e *RejectedError) Unwrap() []error {
	if len(e.Reasons) == 0 {
		return []error{ErrNotSigned}
	}
	out := make([]error, len(e.Reasons))
	for i, r := range e.Reasons {
		out[i] = r
	}
	return out
}

// MaxChecked bounds the signatures tried per bundle, so that a bundle
// stuffed with thousands of bogus signatures cannot keep a device busy for
// minutes before it is refused.
const MaxChecked = 32

// ErrOtherBundle is the reason for a valid signature over another header.
var ErrOtherBundle = errors.New("signature is for another bundle")

// VerifyBundle checks that at least one of sigs is a valid signature, by a
// certificate chaining to a trusted root, over headerHash. It stops at the
// first valid one.
func (v *Verifier) VerifyBundle(headerHash hashes.Digest, sigs [][]byte) (*Result, error) {
	return v.verify(sigs, func(d hashes.Digest) bool { return d.Equal(headerHash) }, headerHash)
}

// VerifyHeader is VerifyBundle for callers holding the header bytes: like
// Rugix, it also accepts a signed header hash in another algorithm than the
// header's own.
func (v *Verifier) VerifyHeader(headerRaw []byte, alg hashes.Algorithm, sigs [][]byte) (*Result, error) {
	own := hashes.Digest{Alg: alg, Sum: alg.Sum(headerRaw)}
	return v.verify(sigs, func(d hashes.Digest) bool {
		return bytes.Equal(d.Sum, d.Alg.Sum(headerRaw))
	}, own)
}

// VerifyReader verifies the signatures of a bundle opened with
// bundle.NewReader, before any payload is read.
func (v *Verifier) VerifyReader(r *bundle.Reader) (*Result, error) {
	return v.VerifyHeader(r.HeaderRaw, r.Header.HashAlg, r.Signatures)
}

func (v *Verifier) verify(sigs [][]byte, matches func(hashes.Digest) bool, own hashes.Digest) (*Result, error) {
	if v.Roots == nil || len(v.Roots.Certs) == 0 {
		return nil, errors.New("no trusted root certificates configured")
	}
	rej := &RejectedError{}
	for i, der := range sigs {
		if i == MaxChecked {
			rej.Reasons = append(rej.Reasons, &SignatureError{Index: i, Err: fmt.Errorf("not checked: only the first %d of %d signatures are", MaxChecked, len(sigs))})
			break
		}
		res, err := v.verifyOne(der, matches, own)
		if err != nil {
			rej.Reasons = append(rej.Reasons, &SignatureError{Index: i, Err: err})
			continue
		}
		res.Index = i
		for _, r := range rej.Reasons {
			res.Rejected = append(res.Rejected, r)
		}
		return res, nil
	}
	return nil, rej
}

func (v *Verifier) verifyOne(der []byte, matches func(hashes.Digest) bool, own hashes.Digest) (*Result, error) {
	c, err := ParseCMS(der)
	if err != nil {
		return nil, err
	}
	signed, err := bundle.DecodeSignedMetadata(c.Content)
	if err != nil {
		return nil, fmt.Errorf("signed content is not bundle metadata: %w", err)
	}
	res, err := v.VerifyCMS(c)
	if err != nil {
		return nil, err
	}
	if !matches(signed) {
		return nil, fmt.Errorf("%w (it signs header hash %s, this bundle's is %s)", ErrOtherBundle, signed, own)
	}
	return res, nil
}

// VerifyCMS checks a parsed signature: the signature itself, the signer
// certificate's usage, and its chain to a trusted root. The content is not
// interpreted. One valid signer is enough.
func (v *Verifier) VerifyCMS(c *CMS) (*Result, error) {
	var errs []string
	for _, si := range c.Signers {
		res, err := v.verifySigner(c, si)
		if err == nil {
			res.Content = c.Content
			return res, nil
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 1 {
		return nil, errors.New(errs[0])
	}
	return nil, fmt.Errorf("none of %d signers is valid: %s", len(errs), strings.Join(errs, "; "))
}

func (v *Verifier) verifySigner(c *CMS, si *SignerInfo) (*Result, error) {
	if err := c.checkSignature(si); err != nil {
		return nil, err
	}
	leaf := si.Cert
	if err := checkSignerUsage(leaf); err != nil {
		return nil, err
	}
	res := &Result{Signer: leaf}
	at, warn := v.validityTime(leaf)
	if warn != "" {
		res.Warnings = append(res.Warnings, warn)
	}
	inter := x509.NewCertPool()
	for _, cert := range c.Certificates {
		if cert != leaf {
			inter.AddCert(cert)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.Roots.pool,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return nil, chainError(err, leaf, at)
	}
	res.Chain = chains[0]
	return res, nil
}

// checkSignerUsage applies the end-entity rules Rugix 1.x applies: not a
// CA, keyUsage digitalSignature when keyUsage is present, EKU codeSigning
// when EKU is present.
func checkSignerUsage(c *x509.Certificate) error {
	who := "signer certificate " + describeCert(c)
	if c.BasicConstraintsValid && c.IsCA {
		return fmt.Errorf("%s is a CA certificate, not an end-entity signer", who)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%s: key usage does not include digitalSignature", who)
	}
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return nil
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageCodeSigning {
			return nil
		}
	}
	return fmt.Errorf("%s: extended key usage does not include codeSigning", who)
}

// validityTime applies the clock policy documented on Verifier.ClockFloor.
func (v *Verifier) validityTime(leaf *x509.Certificate) (time.Time, string) {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	floor := v.ClockFloor
	if floor.IsZero() {
		floor = DefaultClockFloor()
	}
	if !now.Before(floor) {
		return now, ""
	}
	at := floor
	if leaf.NotBefore.After(at) {
		at = leaf.NotBefore
	}
	return at, fmt.Sprintf("system clock (%s) is before %s and probably not set: certificate validity checked at %s, a not-yet-valid certificate is not refused",
		now.UTC().Format(time.RFC3339), floor.UTC().Format("2006-01-02"), at.UTC().Format(time.RFC3339))
}

// chainError turns crypto/x509's verdict into a one-line reason.
func chainError(err error, leaf *x509.Certificate, at time.Time) error {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		hint := ""
		if s := ua.Error(); strings.Contains(s, " (possibly") {
			hint = s[strings.Index(s, " (possibly"):]
		}
		return fmt.Errorf("certificate signed by unknown authority: no chain from %s to a trusted root%s", describeCert(leaf), hint)
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		c := ci.Cert
		if at.Before(c.NotBefore) {
			return fmt.Errorf("certificate %s is not valid before %s (checked at %s)", describeCert(c), c.NotBefore.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
		return fmt.Errorf("certificate %s expired at %s (checked at %s)", describeCert(c), c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
		return fmt.Errorf("certificate chain of %s is not valid for codeSigning (an intermediate restricts the extended key usage)", describeCert(leaf))
	}
	return fmt.Errorf("certificate chain: %s", strings.TrimPrefix(err.Error(), "x509: "))
}

// describeCert names a certificate for messages.
func describeCert(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}
