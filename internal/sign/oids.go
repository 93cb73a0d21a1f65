package sign

import (
	"crypto"
	"encoding/asn1"
)

// Encoded OBJECT IDENTIFIERs (tag and length included), so that parsed OIDs
// can be compared as bytes.
var (
	oidData          = encOID(1, 2, 840, 113549, 1, 7, 1) // id-data
	oidSignedData    = encOID(1, 2, 840, 113549, 1, 7, 2) // id-signedData
	oidContentType   = encOID(1, 2, 840, 113549, 1, 9, 3)
	oidMessageDigest = encOID(1, 2, 840, 113549, 1, 9, 4)
	oidSigningTime   = encOID(1, 2, 840, 113549, 1, 9, 5)

	oidSHA256 = encOID(2, 16, 840, 1, 101, 3, 4, 2, 1)
	oidSHA384 = encOID(2, 16, 840, 1, 101, 3, 4, 2, 2)
	oidSHA512 = encOID(2, 16, 840, 1, 101, 3, 4, 2, 3)

	oidRSAEncryption = encOID(1, 2, 840, 113549, 1, 1, 1)
	oidRSAPSS        = encOID(1, 2, 840, 113549, 1, 1, 10)
	oidMGF1          = encOID(1, 2, 840, 113549, 1, 1, 8)
	oidSHA256WithRSA = encOID(1, 2, 840, 113549, 1, 1, 11)
	oidSHA384WithRSA = encOID(1, 2, 840, 113549, 1, 1, 12)
	oidSHA512WithRSA = encOID(1, 2, 840, 113549, 1, 1, 13)

	oidECDSAWithSHA256 = encOID(1, 2, 840, 10045, 4, 3, 2)
	oidECDSAWithSHA384 = encOID(1, 2, 840, 10045, 4, 3, 3)
	oidECDSAWithSHA512 = encOID(1, 2, 840, 10045, 4, 3, 4)

	oidEd25519 = encOID(1, 3, 101, 112)
)

func encOID(arcs ...int) []byte { return mustMarshal(asn1.ObjectIdentifier(arcs)) }

var oidNames = map[string]string{
	string(oidData): "id-data", string(oidSignedData): "id-signedData",
	string(oidContentType): "contentType", string(oidMessageDigest): "messageDigest",
	string(oidSigningTime): "signingTime",
	string(oidSHA256):      "sha256", string(oidSHA384): "sha384", string(oidSHA512): "sha512",
	string(oidRSAEncryption): "rsaEncryption", string(oidRSAPSS): "RSASSA-PSS",
	string(oidSHA256WithRSA): "sha256WithRSAEncryption", string(oidSHA384WithRSA): "sha384WithRSAEncryption",
	string(oidSHA512WithRSA): "sha512WithRSAEncryption", string(oidECDSAWithSHA256): "ecdsa-with-SHA256",
	string(oidECDSAWithSHA384): "ecdsa-with-SHA384", string(oidECDSAWithSHA512): "ecdsa-with-SHA512",
	string(oidEd25519): "Ed25519", string(oidMGF1): "MGF1",
}

// hashByOID maps the digest algorithms CMS signers may use. SHA-1 and MD5
// are deliberately absent.
func hashByOID(oid []byte) (crypto.Hash, bool) {
	switch string(oid) {
	case string(oidSHA256):
		return crypto.SHA256, true
	case string(oidSHA384):
		return crypto.SHA384, true
	case string(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

func oidByHash(h crypto.Hash) []byte {
	switch h {
	case crypto.SHA384:
		return oidSHA384
	case crypto.SHA512:
		return oidSHA512
	}
	return oidSHA256
}
