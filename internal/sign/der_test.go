package sign

import (
	"bytes"
	"strings"
	"testing"
)

func TestDERStrictness(t *testing.T) {
	bad := map[string][]byte{
		"empty":             {},
		"short":             {0x30},
		"indefinite":        {0x30, 0x80, 0x00, 0x00},
		"non-minimal long":  {0x04, 0x81, 0x05, 1, 2, 3, 4, 5},
		"leading zero":      {0x04, 0x82, 0x00, 0x80},
		"five length bytes": {0x04, 0x85, 1, 0, 0, 0, 0},
		"high tag":          {0x1f, 0x81, 0x00},
		"truncated":         {0x04, 0x05, 1, 2},
		"huge":              {0x04, 0x84, 0x7f, 0xff, 0xff, 0xff},
		"negative on 32bit": {0x04, 0x84, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range bad {
		if _, _, err := readElement(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseOne([]byte{0x05, 0x00, 0x00}); err == nil {
		t.Error("trailing bytes accepted")
	}
}

func TestTLVLengths(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 20} {
		b := tlv(tagOctetString, make([]byte, n))
		e, err := parseOne(b)
		if err != nil || len(e.body) != n || !bytes.Equal(e.full, b) {
			t.Errorf("length %d: %v", n, err)
		}
	}
	s := setOf(tagSet, [][]byte{{0x04, 0x01, 0x02}, {0x02, 0x01, 0x05}, {0x04, 0x01, 0x01}})
	if !bytes.Equal(s, []byte{0x31, 9, 0x02, 0x01, 0x05, 0x04, 0x01, 0x01, 0x04, 0x01, 0x02}) {
		t.Errorf("SET OF not sorted: %x", s)
	}
}

func TestParseCMSRejects(t *testing.T) {
	p := newPKI(t, pkiOptions{})
	der, err := p.signer().Sign([]byte("content"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCMS(der); err != nil {
		t.Fatal(err)
	}
	// Another content type in the ContentInfo (id-data instead of
	// id-signedData).
	other := bytes.Replace(der, oidSignedData, oidData, 1)
	if _, err := ParseCMS(other); err == nil || !strings.Contains(err.Error(), "not id-signedData") {
		t.Errorf("content type: %v", err)
	}
	if _, err := ParseCMS(append(der, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	if _, err := ParseCMS(make([]byte, MaxCMSSize+1)); err == nil {
		t.Error("oversized input accepted")
	}
}
