package main

import (
	"crypto/sha512"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
)

func sha512_256(b []byte) []byte {
	s := sha512.Sum512_256(b)
	return s[:]
}

func buildBundle(t *testing.T, dir, out string) string {
	t.Helper()
	d, err := bundle.Build(dir, out, bundle.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
