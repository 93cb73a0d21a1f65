package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Roots is a set of trusted root certificates.
type Roots struct {
	Certs []*x509.Certificate
	pool  *x509.CertPool
}

// NewRoots trusts the given certificates.
func NewRoots(certs ...*x509.Certificate) *Roots {
	r := &Roots{pool: x509.NewCertPool()}
	for _, c := range certs {
		r.add(c)
	}
	return r
}

func (r *Roots) add(c *x509.Certificate) {
	for _, have := range r.Certs {
		if have.Equal(c) {
			return
		}
	}
	r.Certs = append(r.Certs, c)
	r.pool.AddCert(c)
}

// rootFileName matches the files LoadRoots reads from a directory:
// certificate extensions and openssl's c_rehash names (Rugix 0.8 passes a
// directory to openssl as -CApath, which needs those).
var rootFileName = regexp.MustCompile(`(?i)(\.(pem|crt|cer|der)|^[0-9a-f]{8}\.[0-9]+)$`)

// LoadRoots reads trusted root certificates from files (PEM with one or more
// certificates, or DER) and directories (every *.pem, *.crt, *.cer, *.der
// and hash-named file in it, not recursively). Having no certificate at all
// is an error, so that a typo cannot turn verification into "trust nothing"
// silently.
func LoadRoots(paths ...string) (*Roots, error) {
	r := NewRoots()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("trusted roots: %w", err)
		}
		files := []string{p}
		if fi.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("trusted roots: %w", err)
			}
			files = files[:0]
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), ".") && rootFileName.MatchString(e.Name()) {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(files)
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err != nil || fi.IsDir() {
				continue
			}
			certs, err := LoadCertificates(f)
			if err != nil {
				return nil, fmt.Errorf("trusted roots: %w", err)
			}
			for _, c := range certs {
				r.add(c)
			}
		}
	}
	if len(r.Certs) == 0 {
		return nil, fmt.Errorf("trusted roots: no certificate found in %s", strings.Join(paths, ", "))
	}
	return r, nil
}

// LoadCertificates reads the certificates of a PEM or DER file, in file
// order.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ParseCertificates parses PEM CERTIFICATE blocks or one DER certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if !strings.Contains(string(data), "-----BEGIN") {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("neither PEM nor a DER certificate: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE in the PEM data")
	}
	return out, nil
}

// LoadKey reads an unencrypted private key: PEM PKCS#8 ("PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"), or DER PKCS#8.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseKey is LoadKey on bytes.
func ParseKey(data []byte) (crypto.Signer, error) {
	der := data
	kind := "PRIVATE KEY"
	if strings.Contains(string(data), "-----BEGIN") {
		var b *pem.Block
		for rest := data; ; {
			if b, rest = pem.Decode(rest); b == nil || strings.HasSuffix(b.Type, "PRIVATE KEY") {
				break
			}
		}
		if b == nil {
			return nil, errors.New("no PRIVATE KEY block in the PEM data")
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
			return nil, errors.New("the key is encrypted; decrypt it (openssl pkey) or sign with openssl or an HSM through `signatures prepare` and `add`")
		}
		der, kind = b.Bytes, b.Type
	}
	var k any
	var err error
	switch kind {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	default:
		k, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

// EncodeCertificatesPEM returns certificates as PEM.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// EncodeKeyPEM returns a private key as PEM PKCS#8, which openssl reads for
// every key type.
func EncodeKeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
