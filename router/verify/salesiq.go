package verify

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
)

const salesIQHeader = "x-siqsignature"

// minRSABits is the smallest RSA modulus accepted. Smaller keys are within
// reach of a motivated attacker, and there is no interoperability reason to
// allow them.
const minRSABits = 2048

// strictBase64 refuses non-zero padding bits; see decodeCanonicalBase64.
var strictBase64 = base64.StdEncoding.Strict()

// decodeCanonicalBase64 accepts only the one spelling the encoder produces.
// Alternative spellings of a valid signature are not a forgery, but they make
// "this exact header was accepted" ambiguous, and the strict form is what
// guarantees that changing any byte of a genuine header makes it fail.
func decodeCanonicalBase64(s string) ([]byte, bool) {
	// The decoder skips CR and LF even in strict mode.
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	b, err := strictBase64.DecodeString(s)
	return b, err == nil
}

var (
	errSIQEncoding = reject("x-siqsignature is not canonical standard base64")
	errSIQLength   = reject("x-siqsignature has the wrong length for every configured key")
	errSIQMismatch = reject("x-siqsignature does not verify with any configured key")
)

type salesIQ struct {
	keys      []*rsa.PublicKey
	hdr       headerReader
	maxEncLen int // longest base64 signature any configured key can produce
}

// NewSalesIQ returns a Verifier for Zoho SalesIQ's x-siqsignature: base64 of
// an RSA PKCS#1 v1.5 SHA-256 signature over the raw body. SalesIQ lets a
// webhook hold two public keys during rotation, so any configured key that
// verifies is enough. The keys are copied; later changes by the caller do
// not affect the verifier.
//
// It fails if keys is empty or any key is nil, smaller than 2048 bits, or
// has an exponent crypto/rsa would refuse, so that a bad config is caught at
// startup rather than by rejecting every request.
func NewSalesIQ(keys []*rsa.PublicKey) (Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("salesiq: at least one public key is required")
	}
	v := &salesIQ{hdr: newHeaderReader(salesIQHeader, 0)}
	for i, k := range keys {
		if err := checkRSAPublicKey(k); err != nil {
			return nil, fmt.Errorf("salesiq: key #%d: %w", i+1, err)
		}
		v.keys = append(v.keys, &rsa.PublicKey{N: new(big.Int).Set(k.N), E: k.E})
		v.maxEncLen = max(v.maxEncLen, base64.StdEncoding.EncodedLen(k.Size()))
	}
	return v, nil
}

func (v *salesIQ) Verify(h http.Header, body []byte, _ time.Time) error {
	s, err := v.hdr.get(h)
	if err != nil {
		return err
	}
	// Bounding the length before decoding keeps a huge header from costing
	// an allocation and a decode pass.
	if len(s) > v.maxEncLen {
		return errSIQLength
	}
	sig, ok := decodeCanonicalBase64(s)
	if !ok {
		return errSIQEncoding
	}
	digest := sha256.Sum256(body)
	sized := false
	for _, k := range v.keys {
		if len(sig) != k.Size() {
			continue
		}
		sized = true
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil {
			return nil
		}
	}
	if !sized {
		return errSIQLength
	}
	return errSIQMismatch
}

// SignSalesIQ returns the x-siqsignature value for body: standard base64 of
// the RSA PKCS#1 v1.5 SHA-256 signature. It lets `hookroute send` and tests
// impersonate SalesIQ with a locally generated key pair.
func SignSalesIQ(key *rsa.PrivateKey, body []byte) (string, error) {
	if key == nil {
		return "", errors.New("salesiq: nil private key")
	}
	// Signing with a key the verifier would refuse only produces requests
	// that bounce, so fail here where the cause is obvious.
	if err := checkRSAPublicKey(&key.PublicKey); err != nil {
		return "", fmt.Errorf("salesiq: %w", err)
	}
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("salesiq: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// ParseRSAPublicKey parses an RSA public key as SalesIQ users are likely to
// paste it. The vendor does not document the format, so all common ones are
// accepted: a PEM "PUBLIC KEY" block (PKIX SubjectPublicKeyInfo, what Java's
// X509EncodedKeySpec expects), a PEM "RSA PUBLIC KEY" block (PKCS#1), or the
// bare base64 of the DER (PKIX, falling back to PKCS#1), in which spaces and
// line breaks are ignored. Keys smaller than 2048 bits are refused.
func ParseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("rsa public key: empty")
	}
	var key *rsa.PublicKey
	if bytes.Contains(data, []byte("-----BEGIN")) {
		block, rest := pem.Decode(data)
		if block == nil {
			return nil, errors.New("rsa public key: malformed PEM")
		}
		// Two keys in one value would leave it unclear which one the
		// operator meant; rotation is expressed as two config entries.
		if bytes.Contains(rest, []byte("-----BEGIN")) {
			return nil, errors.New("rsa public key: more than one PEM block; configure each key separately")
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("rsa public key: %w", err)
			}
			k, ok := pub.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("rsa public key: PEM holds a %T, not an RSA key", pub)
			}
			key = k
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("rsa public key: %w", err)
			}
			key = k
		default:
			return nil, fmt.Errorf("rsa public key: PEM block type %q, want \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", block.Type)
		}
	} else {
		der, err := decodeLooseBase64(data)
		if err != nil {
			return nil, errors.New("rsa public key: neither PEM nor valid base64")
		}
		k, err := parseDERPublicKey(der)
		if err != nil {
			return nil, err
		}
		key = k
	}
	if err := checkRSAPublicKey(key); err != nil {
		return nil, fmt.Errorf("rsa public key: %w", err)
	}
	return key, nil
}

// parseDERPublicKey tries PKIX first because that is what SalesIQ's Java
// examples produce; PKCS#1 is the fallback for keys exported by OpenSSL's
// -RSAPublicKey_out.
func parseDERPublicKey(der []byte) (*rsa.PublicKey, error) {
	pub, pkixErr := x509.ParsePKIXPublicKey(der)
	if pkixErr == nil {
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("rsa public key: DER holds a %T, not an RSA key", pub)
		}
		return k, nil
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("rsa public key: not PKIX or PKCS#1 DER: %w", pkixErr)
}

// decodeLooseBase64 tolerates the whitespace a key picks up when copied out
// of a web page or wrapped in a YAML block scalar, and a missing padding.
func decodeLooseBase64(data []byte) ([]byte, error) {
	compact := make([]byte, 0, len(data))
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			compact = append(compact, c)
		}
	}
	if len(compact) == 0 {
		return nil, errors.New("empty")
	}
	if der, err := base64.StdEncoding.DecodeString(string(compact)); err == nil {
		return der, nil
	}
	return base64.RawStdEncoding.DecodeString(string(compact))
}

// ParseRSAPrivateKey parses the PEM private key that `hookroute send` and
// tests sign with: "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1).
// Encrypted PEM is refused because there is nowhere to enter a passphrase.
// Error messages never contain key material.
func ParseRSAPrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, rest := pem.Decode(bytes.TrimSpace(data))
	if block == nil {
		return nil, errors.New("rsa private key: no PEM block found")
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, errors.New("rsa private key: more than one PEM block")
	}
	if _, encrypted := block.Headers["DEK-Info"]; encrypted {
		return nil, errors.New("rsa private key: encrypted PEM is not supported")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("rsa private key: invalid PKCS#8 DER")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("rsa private key: PEM holds a %T, not an RSA key", k)
		}
		key = rk
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("rsa private key: invalid PKCS#1 DER")
		}
		key = k
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("rsa private key: encrypted PKCS#8 is not supported")
	default:
		return nil, fmt.Errorf("rsa private key: PEM block type %q, want \"PRIVATE KEY\" or \"RSA PRIVATE KEY\"", block.Type)
	}
	if err := checkRSAPublicKey(&key.PublicKey); err != nil {
		return nil, fmt.Errorf("rsa private key: %w", err)
	}
	return key, nil
}

// checkRSAPublicKey rejects keys that crypto/rsa would refuse at verify time
// (so the failure shows at startup, not as a stream of 401s) and keys too
// small to trust.
func checkRSAPublicKey(k *rsa.PublicKey) error {
	switch {
	case k == nil || k.N == nil:
		return errors.New("missing key")
	case k.N.Sign() <= 0 || k.N.Bit(0) == 0:
		return errors.New("invalid modulus")
	case k.N.BitLen() < minRSABits:
		return fmt.Errorf("%d-bit key is too small, need at least %d bits", k.N.BitLen(), minRSABits)
	case k.E < 3 || k.E&1 == 0 || k.E > 1<<31-1:
		return errors.New("invalid public exponent")
	}
	return nil
}
