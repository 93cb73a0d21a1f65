// Package sign makes and checks bundle signatures: CMS SignedData (RFC
// 5652) with the signed metadata attached, as Rugix writes them into a
// bundle's signatures segment and openssl produces and verifies them.
//
// The CMS code is a focused implementation on top of crypto/x509 rather
// than a general PKCS#7 library: it accepts DER only, the algorithms Rugix
// 1.x accepts (ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS, Ed25519) and
// nothing weaker, so that what a device accepts is small enough to review
// and to fuzz.
package sign
