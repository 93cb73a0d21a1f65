package hashes

import (
	"strings"
	"testing"
)

func TestDigestRoundTrip(t *testing.T) {
	for _, a := range []Algorithm{SHA256, SHA512_256, SHA512} {
		d := Digest{Alg: a, Sum: a.Sum([]byte("hello\n"))}
		for _, s := range []string{d.String(), strings.Replace(d.String(), ":", "_", 1), strings.Replace(d.String(), "sha512-256", "sha512_256", 1)} {
			got, err := ParseDigest(s)
			if err != nil {
				t.Fatalf("ParseDigest(%q): %v", s, err)
			}
			if !got.Equal(d) {
				t.Fatalf("ParseDigest(%q) = %v, want %v", s, got, d)
			}
		}
		h := a.New()
		h.Write([]byte("hello\n"))
		if got := h.Sum(nil); string(got) != string(d.Sum) || len(got) != a.Size() {
			t.Fatalf("%v: New and Sum disagree", a)
		}
	}
}

func TestKnownValue(t *testing.T) {
	// sha512-256 of the empty string, from FIPS 180-4 test vectors.
	want := "sha512-256:c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"
	if got := (Digest{Alg: SHA512_256, Sum: SHA512_256.Sum(nil)}).String(); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestParseDigestErrors(t *testing.T) {
	for _, s := range []string{"", "sha512-256", "md5:00", "sha256:zz", "sha256:" + strings.Repeat("0", 62), "sha512:" + strings.Repeat("0", 64)} {
		if _, err := ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", s)
		}
	}
}
