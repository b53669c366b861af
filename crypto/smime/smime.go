// Package smime signs, encrypts, decrypts and verifies mail with S/MIME
// 4.0 (RFC 8551) over CMS (RFC 5652), in the profile of the Direct
// Project's Applicability Statement for Secure Health Transport: the whole
// RFC 5322 message is wrapped as message/rfc822, signed (multipart/signed,
// detached, SHA-256), then encrypted (application/pkcs7-mime
// enveloped-data, AES-256-CBC, RSA 2048+ key transport).
//
// Received mail may use RSA PKCS#1 v1.5 or RSAES-OAEP (RFC 3560) key
// transport, AES-128/192/256-CBC (EnvelopedData) or AES-GCM
// (AuthEnvelopedData, RFC 5083/5084) content encryption, and signers named by
// issuer and serial number or by subject key identifier; BER from
// Thunderbird, Outlook or OpenSSL's streaming mode is accepted. Results
// are reported as an Authentication-Results field (RFC 8601, smime method
// of RFC 7281) and a human-readable X-Relais-SMIME field.
//
// Canonical form: every message is handled with CRLF line endings (RFC
// 8551 3.1.1); input with bare LF is converted first, and the message Open
// returns is that CRLF form.
//
// Library: github.com/smallstep/pkcs7 (the maintained fork of
// go.mozilla.org/pkcs7, same API) writes SignedData. EnvelopedData and the
// reading of SignedData are done here with encoding/asn1, because the
// library defaults to DES-CBC and SHA-1 through process-wide variables,
// drops signers named by subject key identifier, reads only issuer+serial
// recipients, and can panic on crafted CBC padding.
package smime

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Limits on untrusted input.
const (
	// MaxMessageSize is the largest message Open processes; larger ones
	// are returned unopened with Verdict permerror.
	MaxMessageSize = 64 << 20
	// MaxDepth bounds the S/MIME layers Open unwraps (signed inside
	// encrypted inside signed...).
	MaxDepth = 3
)

// Errors in Result.Err and from the functions here; test with errors.Is.
var (
	ErrMalformed      = errors.New("malformed S/MIME or CMS")
	ErrUnsupported    = errors.New("unsupported algorithm")
	ErrNoKey          = errors.New("cannot decrypt: no key for any recipient")
	ErrDecrypt        = errors.New("cannot decrypt")
	ErrBadSignature   = errors.New("bad signature")
	ErrExpired        = errors.New("certificate expired")
	ErrNotYetValid    = errors.New("certificate not yet valid")
	ErrRevoked        = errors.New("certificate revoked")
	ErrUntrusted      = errors.New("untrusted certificate chain")
	ErrKeyUsage       = errors.New("wrong key usage")
	ErrAddress        = errors.New("signer certificate does not match the From address")
	ErrRevocationTemp = errors.New("revocation status unavailable")
	ErrTooLarge       = errors.New("message too large")
	ErrTooDeep        = errors.New("S/MIME nested too deep")
)

// recovered counts panics caught in Open, Detect and Sign.
var recovered atomic.Int64

// RecoveredPanics is the number of panics caught in this package since the
// process started (a bug or a library fault on crafted input), for metrics.
func RecoveredPanics() int64 { return recovered.Load() }

// Identity is a signing and decrypting identity: an RSA key (also a
// crypto.Decrypter), its certificate and the intermediates up to, not
// including, the root.
type Identity struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// Kind is what Detect finds.
type Kind int

const (
	Plain     Kind = iota // not S/MIME (or not parseable as a message)
	Signed                // multipart/signed or pkcs7-mime signed-data
	Encrypted             // pkcs7-mime enveloped-data (or authEnveloped-data)
)

func (k Kind) String() string {
	switch k {
	case Signed:
		return "signed"
	case Encrypted:
		return "encrypted"
	}
	return "plain"
}

// VerifyOptions are the collaborators of Open.
type VerifyOptions struct {
	// Roots are the trust anchors; nil means the system roots.
	Roots, Intermediates *x509.CertPool
	// Now is the verification time; nil means time.Now.
	Now func() time.Time
	// Revocation tells the status of cert, issued by issuer. nil: not
	// checked, reported "unknown".
	Revocation func(ctx context.Context, cert, issuer *x509.Certificate) (RevocationResult, error)
	// AuthServID is the host name used in Authentication-Results; fields
	// claiming it inside the received message are removed (RFC 8601 5).
	AuthServID string
}

// RevocationResult is what a revocation checker says.
type RevocationResult struct {
	Status string // "good", "revoked", "unknown"
	Detail string // e.g. "CRL of 2026-11-23", "keyCompromise on ..."
}

// Result is what Open found and verified.
type Result struct {
	Encrypted, Signed bool
	Signer            *x509.Certificate
	SignerAddress     string
	Chain             string // "ok" or why it failed
	ChainRoot         string // subject CN of the root the chain ends at
	Revocation        string // "good (...)", "revoked (...)", "unknown (...)"
	Verdict           string // RFC 7281 3: none, pass, fail, neutral, temperror, permerror
	Err               error
}

// Opened is Open's answer.
type Opened struct {
	Message []byte
	Result  Result
}

// EncryptOption changes Encrypt's defaults.
type EncryptOption func(*encryptConfig)

type encryptConfig struct{ oaep bool }

// WithOAEP uses RSAES-OAEP with SHA-256 (RFC 3560, RFC 8551 2.3) for key
// transport instead of PKCS#1 v1.5. Older clients cannot read it.
func WithOAEP() EncryptOption { return func(c *encryptConfig) { c.oaep = true } }

// Sign wraps msg (a full RFC 5322 message) as message/rfc822 and returns a
// full message whose body is multipart/signed (RFC 8551 3.5.3, RFC 1847
// 2.1; protocol application/pkcs7-signature, micalg sha-256) over that
// part. The outer header keeps the fields of protectedOuter.
func Sign(msg []byte, id Identity) ([]byte, error) {
	if id.Cert == nil || id.Key == nil {
		return nil, fmt.Errorf("smime: signing: identity without certificate or key")
	}
	if pub, ok := id.Key.Public().(*rsa.PublicKey); ok && pub.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("smime: signing: RSA key of %d bits, need %d", pub.N.BitLen(), minRSABits)
	}
	msg = toCRLF(msg)
	fields, _, err := splitMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("smime: signing: %w", err)
	}
	var inner bytes.Buffer
	inner.WriteString("Content-Type: message/rfc822\r\n")
	if has8bit(msg) {
		// RFC 2046 5.2.1: message/rfc822 takes 7bit, 8bit or binary only.
		inner.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	}
	inner.WriteString("\r\n")
	inner.Write(msg)
	sig, err := signDetached(inner.Bytes(), id)
	if err != nil {
		return nil, err
	}
	boundary, err := newBoundary(inner.Bytes())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	writeOuter(&out, fields, func(name string) bool { return protectedOuter[name] })
	out.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&out, "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\tmicalg=sha-256; boundary=\"%s\"\r\n", boundary)
	if has8bit(msg) {
		out.WriteString("Content-Transfer-Encoding: 8bit\r\n") // RFC 2045 6.4
	}
	out.WriteString("\r\nThis is a cryptographically signed message in MIME format.\r\n\r\n")
	fmt.Fprintf(&out, "--%s\r\n", boundary)
	out.Write(inner.Bytes())
	fmt.Fprintf(&out, "\r\n--%s\r\n", boundary)
	// RFC 8551 3.5.3.
	out.WriteString("Content-Type: application/pkcs7-signature; name=smime.p7s\r\n")
	out.WriteString("Content-Transfer-Encoding: base64\r\n")
	out.WriteString("Content-Disposition: attachment; filename=smime.p7s\r\n\r\n")
	out.Write(base64Lines(sig))
	fmt.Fprintf(&out, "--%s--\r\n", boundary)
	return out.Bytes(), nil
}

// Encrypt encrypts the body entity of msg (a full message, typically Sign's
// output: its Content-* fields and body) to every certificate with
// AES-256-CBC and RSA PKCS#1 v1.5 key transport (WithOAEP for RSAES-OAEP),
// and returns the full message with Content-Type application/pkcs7-mime;
// smime-type=enveloped-data (RFC 8551 3.3), base64, the other header
// fields kept.
func Encrypt(msg []byte, recipients []*x509.Certificate, opts ...EncryptOption) ([]byte, error) {
	var cfg encryptConfig
	for _, o := range opts {
		o(&cfg)
	}
	msg = toCRLF(msg)
	fields, body, err := splitMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("smime: encrypting: %w", err)
	}
	var entity bytes.Buffer
	for _, f := range fields {
		if isMIMEField(f.name) {
			entity.Write(f.raw)
		}
	}
	entity.WriteString("\r\n")
	entity.Write(body)
	der, err := envelope(entity.Bytes(), recipients, cfg.oaep)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	writeOuter(&out, fields, func(name string) bool { return !isMIMEField(name) && name != "mime-version" })
	out.WriteString("MIME-Version: 1.0\r\n")
	out.WriteString("Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n\tname=smime.p7m\r\n")
	out.WriteString("Content-Transfer-Encoding: base64\r\n")
	out.WriteString("Content-Disposition: attachment; filename=smime.p7m\r\n\r\n")
	out.Write(base64Lines(der))
	return out.Bytes(), nil
}

func writeOuter(out *bytes.Buffer, fields []field, keep func(string) bool) {
	for _, f := range fields {
		if keep(f.name) {
			out.Write(f.raw)
			if !bytes.HasSuffix(f.raw, []byte("\r\n")) {
				out.WriteString("\r\n")
			}
		}
	}
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// newBoundary picks a boundary that does not occur in content (RFC 2046
// 5.1.1).
func newBoundary(content []byte) (string, error) {
	for range 4 {
		var r [18]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", fmt.Errorf("smime: boundary: %w", err)
		}
		b := "relais-smime-" + hex.EncodeToString(r[:])
		if !bytes.Contains(content, []byte(b)) {
			return b, nil
		}
	}
	return "", fmt.Errorf("smime: no usable boundary")
}
