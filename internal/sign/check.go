package sign

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// SignedHeaderHash decodes the content as bundle signed metadata and
// returns the header hash it signs.
func (c *CMS) SignedHeaderHash() (hashes.Digest, error) {
	d, err := bundle.DecodeSignedMetadata(c.Content)
	if err != nil {
		return d, fmt.Errorf("signed content is not bundle metadata: %w", err)
	}
	return d, nil
}

// VerifySignature checks that at least one signer's signature verifies with
// the certificate embedded for it. Trust is not checked.
func (c *CMS) VerifySignature() error {
	var errs []string
	for _, si := range c.Signers {
		err := c.checkSignature(si)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return errors.New(strings.Join(errs, "; "))
}

// CheckSignature is what `signatures add` checks before it embeds a
// signature made elsewhere (openssl, an HSM): a CMS SignedData whose content
// is the signed metadata of this very header and whose signature verifies
// with its embedded signer certificate. The chain is not checked, because
// the machine that builds bundles need not hold the devices' roots.
func CheckSignature(der, headerRaw []byte, alg hashes.Algorithm) (*CMS, error) {
	c, err := ParseCMS(der)
	if err != nil {
		return nil, err
	}
	d, err := c.SignedHeaderHash()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(d.Sum, d.Alg.Sum(headerRaw)) {
		own := hashes.Digest{Alg: alg, Sum: alg.Sum(headerRaw)}
		return nil, fmt.Errorf("%w (it signs header hash %s, this bundle's is %s)", ErrOtherBundle, d, own)
	}
	if err := c.VerifySignature(); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckSignerCert tells whether devices would accept a certificate as a
// signer (ignoring the chain and time), so that `sign` can refuse before it
// makes signatures that every device refuses.
func CheckSignerCert(c *x509.Certificate) error { return checkSignerUsage(c) }
