package sign

import (
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// BenchmarkVerifyP256Chain2 is what a device pays before installing: hash
// the header, then check one CMS signature by a P-256 signer whose P-256
// root is trusted (a chain of two).
func BenchmarkVerifyP256Chain2(b *testing.B) {
	p := newPKI(b, pkiOptions{name: "bench"})
	// A header of realistic size: two payloads and an embedded manifest.
	alg := hashes.SHA512_256
	hdr := bundle.EncodeHeader(&bundle.Header{
		Manifest: strings.Repeat(`{"payloads":[{"filename":"rootfs.ext4"}]}`, 25), HasManifest: true,
		HashAlg: alg,
		Payloads: []bundle.PayloadEntry{
			{Slot: "boot", HeaderHash: alg.Sum([]byte("a")), FileHash: alg.Sum([]byte("b"))},
			{Slot: "system", HeaderHash: alg.Sum([]byte("c")), FileHash: alg.Sum([]byte("d"))},
		},
	})
	sigs := [][]byte{signHash(b, p.signer(), hashes.Digest{Alg: alg, Sum: alg.Sum(hdr)})}
	v := p.verifier()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := hashes.Digest{Alg: alg, Sum: alg.Sum(hdr)}
		if _, err := v.VerifyBundle(h, sigs); err != nil {
			b.Fatal(err)
		}
	}
}
