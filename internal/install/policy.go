// Package install installs a bundle into the slots of a boot group: the
// header and signatures are checked before anything else, every block before
// it is written, and the file hash at the end of each payload. Only a
// complete, verified install may be armed for the next boot; that is the
// caller's step, after Run returns without error.
package install

import (
	"errors"
	"fmt"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/sign"
)

// Policy is the verification policy of Rugix 1.x: a bundle is trusted if
// its header hash matches one given out of band, or if it carries a valid
// signature from a trusted root. Without either it is refused, unless
// Insecure says the operator accepts unverified bundles.
type Policy struct {
	BundleHash *hashes.Digest // --bundle-hash
	Verifier   *sign.Verifier // roots from ctrl.toml or --root-cert; nil if none
	Insecure   bool           // --insecure-skip-bundle-verification
	Warn       func(string)   // warnings, e.g. an unset clock
}

// ErrNoVerification is returned when a bundle cannot be verified at all.
var ErrNoVerification = errors.New("no way to verify the bundle: give --bundle-hash, trust a root (--root-cert or [signatures] roots in /etc/rugix/ctrl.toml), or pass --insecure-skip-bundle-verification")

// Check applies the policy to a bundle whose header and signatures have been
// read. Nothing of the payloads has been read at this point.
func (p Policy) Check(r *bundle.Reader) error {
	if h := p.BundleHash; h != nil {
		got := hashes.Digest{Alg: h.Alg, Sum: h.Alg.Sum(r.HeaderRaw)}
		if !got.Equal(*h) {
			return fmt.Errorf("header hash is %s, expected %s", got, h)
		}
		return nil
	}
	if p.Verifier != nil {
		res, err := p.Verifier.VerifyReader(r)
		if err != nil {
			return err
		}
		if p.Warn != nil {
			for _, w := range res.Warnings {
				p.Warn(w)
			}
		}
		return nil
	}
	if p.Insecure {
		if p.Warn != nil {
			p.Warn("bundle not verified (--insecure-skip-bundle-verification)")
		}
		return nil
	}
	return ErrNoVerification
}
