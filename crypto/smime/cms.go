package smime

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// Object identifiers used here.
var (
	oidData              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}         // RFC 5652 4
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}         // RFC 5652 5.1
	oidEnvelopedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}         // RFC 5652 6.1
	oidAuthEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23} // RFC 5083 1.1

	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}  // RFC 5652 11.1
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}  // RFC 5652 11.2
	oidSMIMECapabilities = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15} // RFC 8551 2.5.2

	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}  // RFC 3370 4.2.1
	oidRSAESOAEP     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}  // RFC 3560 2.1, RFC 4055 3
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}  // RFC 4055 2.2
	oidPSpecified    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}  // RFC 4055 3.1
	oidRSASSAPSS     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10} // RFC 4056
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	// RFC 3565 4.1 (AES in CMS).
	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	// RFC 5084 3.2 (AES-GCM in CMS).
	oidAES128GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	oidAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidDESCBC    = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	oidDESEDE3   = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// hashByOID maps a digest algorithm to its hash; SHA-1 is known but refused
// by the callers (RFC 8551 2.1: SHA-1 only for backward compatibility).
func hashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1, true
	case oid.Equal(oidSHA224):
		return crypto.SHA224, true
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// contentInfo is RFC 5652 3.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

// issuerAndSerial is RFC 5652 10.2.4.
type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// Limits on what parseCMS accepts: nesting of BER elements and size.
const (
	maxBERDepth = 32
	maxCMSSize  = MaxMessageSize
)

var errBER = errors.New("malformed BER")

// normalizeBER rewrites a BER encoding (indefinite lengths, as Thunderbird,
// Outlook and OpenSSL's streaming mode produce, or non-minimal lengths)
// into definite minimal lengths that encoding/asn1 reads (X.690 8.1.3,
// 10.1). Constructed strings stay constructed: callers join them with
// octets. Elements that are already DER are not copied, and signed
// attributes, DER by rule (RFC 5652 5.3), come out byte for byte unchanged.
func normalizeBER(b []byte) ([]byte, error) {
	if len(b) > maxCMSSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	out, rest, _, err := berElement(b, 0)
	if err != nil {
		return nil, err
	}
	// Trailing bytes after the ContentInfo: tolerated only if they are
	// zeros (some encoders pad).
	for _, c := range rest {
		if c != 0 {
			return nil, fmt.Errorf("%w: trailing data", errBER)
		}
	}
	return out, nil
}

// berElement converts one element and returns it with the bytes after it;
// changed is false when out is the input's own encoding.
func berElement(b []byte, depth int) (out, rest []byte, changed bool, err error) {
	if depth > maxBERDepth {
		return nil, nil, false, fmt.Errorf("%w: nested too deep", errBER)
	}
	if len(b) < 2 {
		return nil, nil, false, fmt.Errorf("%w: truncated", errBER)
	}
	i := 1
	if b[0]&0x1f == 0x1f { // X.690 8.1.2.4: high tag number form
		for i < len(b) && b[i]&0x80 != 0 {
			i++
			if i > 5 {
				return nil, nil, false, fmt.Errorf("%w: tag too long", errBER)
			}
		}
		i++
	}
	if i >= len(b) {
		return nil, nil, false, fmt.Errorf("%w: truncated", errBER)
	}
	tag := b[:i]
	constructed := b[0]&0x20 != 0
	l0 := b[i]
	i++
	if l0 == 0x80 { // X.690 8.1.3.6: indefinite length, ends with 00 00
		if !constructed {
			return nil, nil, false, fmt.Errorf("%w: indefinite primitive", errBER)
		}
		var body []byte
		r := b[i:]
		for {
			if len(r) < 2 {
				return nil, nil, false, fmt.Errorf("%w: missing end-of-contents", errBER)
			}
			if r[0] == 0 && r[1] == 0 {
				r = r[2:]
				break
			}
			child, nr, _, err := berElement(r, depth+1)
			if err != nil {
				return nil, nil, false, err
			}
			body = append(body, child...)
			r = nr
		}
		return appendTLV(tag, body), r, true, nil
	}
	n := int(l0)
	minimal := true
	if l0&0x80 != 0 {
		k := int(l0 & 0x7f)
		if k == 0 || k > 4 || i+k > len(b) {
			return nil, nil, false, fmt.Errorf("%w: bad length", errBER)
		}
		n = 0
		for _, c := range b[i : i+k] {
			n = n<<8 | int(c)
		}
		i += k
		if n < 0 || n > maxCMSSize {
			return nil, nil, false, fmt.Errorf("%w: bad length", errBER)
		}
		minimal = n >= 0x80 && b[i-k] != 0
	}
	if n > len(b)-i {
		return nil, nil, false, fmt.Errorf("%w: truncated", errBER)
	}
	content := b[i : i+n]
	rest = b[i+n:]
	if !constructed {
		if minimal {
			return b[:i+n], rest, false, nil
		}
		return appendTLV(tag, content), rest, true, nil
	}
	// Children are converted lazily: nothing is copied until one changes.
	var body []byte
	changed = !minimal
	for r := content; len(r) > 0; {
		child, nr, c, err := berElement(r, depth+1)
		if err != nil {
			return nil, nil, false, err
		}
		if c && !changed {
			changed = true
			body = append(body, content[:len(content)-len(r)]...)
		}
		if changed {
			body = append(body, child...)
		}
		r = nr
	}
	if !changed {
		return b[:i+n], rest, false, nil
	}
	if body == nil {
		body = content
	}
	return appendTLV(tag, body), rest, true, nil
}

func appendTLV(tag, content []byte) []byte {
	out := make([]byte, 0, len(tag)+6+len(content))
	out = append(out, tag...)
	n := len(content)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 1<<8:
		out = append(out, 0x81, byte(n))
	case n < 1<<16:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, content...)
}

// octets returns the value of an OCTET STRING that may be constructed
// (X.690 8.7.3: a constructed string is the concatenation of its segments).
// raw is the element whose Bytes hold the string (its tag may be implicit).
func octets(raw asn1.RawValue, depth int) ([]byte, error) {
	if !raw.IsCompound {
		return raw.Bytes, nil
	}
	if depth > 8 {
		return nil, fmt.Errorf("%w: octet string nested too deep", errBER)
	}
	var out []byte
	for r := raw.Bytes; len(r) > 0; {
		var seg asn1.RawValue
		nr, err := asn1.Unmarshal(r, &seg)
		if err != nil {
			return nil, fmt.Errorf("%w: octet string segment: %v", errBER, err)
		}
		if seg.Class != asn1.ClassUniversal || seg.Tag != asn1.TagOctetString {
			return nil, fmt.Errorf("%w: octet string segment has tag %d", errBER, seg.Tag)
		}
		b, err := octets(seg, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		r = nr
	}
	return out, nil
}

// parseContentInfo reads a CMS ContentInfo (RFC 5652 3) from BER or DER.
func parseContentInfo(b []byte) (contentInfo, error) {
	var ci contentInfo
	der, err := normalizeBER(b)
	if err != nil {
		return ci, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return ci, fmt.Errorf("%w: ContentInfo: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return ci, fmt.Errorf("%w: trailing data after ContentInfo", ErrMalformed)
	}
	return ci, nil
}

// ridMatches tells whether a RecipientIdentifier or SignerIdentifier (RFC
// 5652 5.3, 6.2.1: issuerAndSerialNumber, or [0] subjectKeyIdentifier)
// names cert.
func ridMatches(rid asn1.RawValue, rawIssuer []byte, serial *big.Int, ski []byte) bool {
	switch {
	case rid.Class == asn1.ClassUniversal && rid.Tag == asn1.TagSequence:
		var ias issuerAndSerial
		if _, err := asn1.Unmarshal(rid.FullBytes, &ias); err != nil || ias.Serial == nil {
			return false
		}
		return string(ias.Issuer.FullBytes) == string(rawIssuer) && ias.Serial.Cmp(serial) == 0
	case rid.Class == asn1.ClassContextSpecific && rid.Tag == 0:
		id, err := octets(rid, 0)
		return err == nil && len(ski) > 0 && string(id) == string(ski)
	}
	return false
}

// algorithm is pkix.AlgorithmIdentifier; named for readability.
type algorithm = pkix.AlgorithmIdentifier
