package directory

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Distinguished names are compared by their parsed attributes, never as
// raw strings (shared/samples/national-files.md): the trust list publishes
// each operator's server certificate DN as an RFC 4514 string, and the
// inbound listener must match it against the subject of a certificate.
// CanonicalDN and CanonicalName give one key for both.
//
// The key: RDNs in RFC 4514 order (the last of the ASN.1 sequence first,
// RFC 4514 2.1), separated by ','; the attributes of a multi-valued RDN
// sorted and joined by '+'; each attribute TYPE=value with the type in
// upper case under its usual short name (RFC 4514 3, and S, E,
// EMAILADDRESS and OIDs mapped), and the value unescaped, NFKC-normalised,
// trimmed, inner white space collapsed to one space and lower-cased: the
// caseIgnoreMatch of RFC 4517 4.2.11 with the string preparation of RFC
// 4518, simplified. Values are re-escaped (RFC 4514 2.4) in the key.

// Bounds of a DN string.
const (
	maxDNLength = 8 << 10
	maxDNRDNs   = 64
)

// attributeNames maps attribute type names and OIDs to their canonical
// short names.
var attributeNames = map[string]string{
	"CN": "CN", "COMMONNAME": "CN", "2.5.4.3": "CN",
	"C": "C", "COUNTRYNAME": "C", "2.5.4.6": "C",
	"L": "L", "LOCALITYNAME": "L", "2.5.4.7": "L",
	"ST": "ST", "S": "ST", "STATEORPROVINCENAME": "ST", "2.5.4.8": "ST",
	"STREET": "STREET", "STREETADDRESS": "STREET", "2.5.4.9": "STREET",
	"O": "O", "ORGANIZATIONNAME": "O", "2.5.4.10": "O",
	"OU": "OU", "ORGANIZATIONALUNITNAME": "OU", "2.5.4.11": "OU",
	"SERIALNUMBER": "SERIALNUMBER", "2.5.4.5": "SERIALNUMBER",
	"SN": "SN", "SURNAME": "SN", "2.5.4.4": "SN",
	"GN": "GIVENNAME", "GIVENNAME": "GIVENNAME", "2.5.4.42": "GIVENNAME",
	"TITLE": "TITLE", "2.5.4.12": "TITLE",
	"POSTALCODE": "POSTALCODE", "2.5.4.17": "POSTALCODE",
	"ORGANIZATIONIDENTIFIER": "ORGANIZATIONIDENTIFIER", "2.5.4.97": "ORGANIZATIONIDENTIFIER",
	"DC": "DC", "DOMAINCOMPONENT": "DC", "0.9.2342.19200300.100.1.25": "DC",
	"UID": "UID", "USERID": "UID", "0.9.2342.19200300.100.1.1": "UID",
	"E": "EMAILADDRESS", "EMAIL": "EMAILADDRESS", "EMAILADDRESS": "EMAILADDRESS", "1.2.840.113549.1.9.1": "EMAILADDRESS",
}

type ava struct {
	typ, val string
	ber      bool // val is "#" + hex of a BER value
}

// CanonicalDN parses an RFC 4514 distinguished name
// ("CN=mx.example.fr,OU=318310021300028,O=Example,ST=Haute-Garonne (31),C=FR")
// and returns its canonical key. It also accepts spaces around separators,
// ';' between RDNs and quoted values (RFC 4514 4 lets parsers accept the
// RFC 1779 forms), and an unescaped '"' inside a value, which the real
// trust list has (O=CRLCC "PAUL STRAUSS").
func CanonicalDN(s string) (string, error) {
	if len(s) > maxDNLength {
		return "", fmt.Errorf("directory: DN longer than %d bytes", maxDNLength)
	}
	rdns, err := parseDN(s)
	if err != nil {
		return "", fmt.Errorf("directory: DN %q: %w", truncate(s, 200), err)
	}
	return formatRDNs(rdns), nil
}

// CanonicalName returns the canonical key of an X.509 name in its ASN.1
// order (a certificate's subject as parsed from RawSubject): the same key
// as CanonicalDN of the name's RFC 4514 string.
func CanonicalName(seq pkix.RDNSequence) string {
	rdns := make([][]ava, 0, len(seq))
	for i := len(seq) - 1; i >= 0; i-- { // RFC 4514 2.1: last element first
		var rdn []ava
		for _, atv := range seq[i] {
			typ := atv.Type.String()
			if n, ok := attributeNames[typ]; ok {
				typ = n
			}
			a := ava{typ: typ}
			switch v := atv.Value.(type) {
			case string:
				a.val = canonicalValue(v)
			default:
				if der, err := asn1.Marshal(v); err == nil {
					a.val, a.ber = "#"+hex.EncodeToString(der), true
				} else {
					a.val = canonicalValue(fmt.Sprint(v))
				}
			}
			rdn = append(rdn, a)
		}
		rdns = append(rdns, rdn)
	}
	return formatRDNs(rdns)
}

// CanonicalSubject returns the canonical key of a certificate's subject,
// read from its DER so that the order of the attributes is the
// certificate's.
func CanonicalSubject(cert *x509.Certificate) (string, error) {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(cert.RawSubject, &seq)
	if err != nil {
		return "", fmt.Errorf("directory: certificate subject: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("directory: certificate subject: trailing data")
	}
	return CanonicalName(seq), nil
}

func formatRDNs(rdns [][]ava) string {
	var b strings.Builder
	for i, rdn := range rdns {
		if i > 0 {
			b.WriteByte(',')
		}
		parts := make([]string, len(rdn))
		for j, a := range rdn {
			if a.ber {
				parts[j] = a.typ + "=" + a.val
			} else {
				parts[j] = a.typ + "=" + escapeValue(a.val)
			}
		}
		slices.Sort(parts)
		b.WriteString(strings.Join(parts, "+"))
	}
	return b.String()
}

// escapeValue escapes an attribute value (RFC 4514 2.4).
func escapeValue(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, r), i == 0 && r == '#':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// canonicalValue prepares a string value for caseIgnoreMatch.
func canonicalValue(v string) string {
	v = norm.NFKC.String(v)
	v = strings.Join(strings.FieldsFunc(v, unicode.IsSpace), " ")
	return strings.ToLower(v)
}

// parseDN parses an RFC 4514 string into RDNs in string order.
func parseDN(s string) ([][]ava, error) {
	p := dnParser{s: s}
	p.skipSpaces()
	if p.i == len(s) {
		return nil, errors.New("empty DN")
	}
	var rdns [][]ava
	var rdn []ava
	for {
		typ, err := p.attrType()
		if err != nil {
			return nil, err
		}
		val, ber, err := p.attrValue()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		rdn = append(rdn, ava{typ, val, ber})
		p.skipSpaces()
		if p.i == len(s) {
			return append(rdns, rdn), nil
		}
		switch s[p.i] {
		case '+':
		case ',', ';':
			rdns = append(rdns, rdn)
			rdn = nil
			if len(rdns) >= maxDNRDNs {
				return nil, fmt.Errorf("more than %d RDNs", maxDNRDNs)
			}
		default:
			return nil, fmt.Errorf("unexpected %q at byte %d", s[p.i], p.i)
		}
		p.i++
		p.skipSpaces()
	}
}

type dnParser struct {
	s string
	i int
}

func (p *dnParser) skipSpaces() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

// attrType reads "type=" (RFC 4514 3: descr or numericoid).
func (p *dnParser) attrType() (string, error) {
	p.skipSpaces()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '=' {
		p.i++
	}
	if p.i == len(p.s) {
		return "", fmt.Errorf("missing '=' after byte %d", start)
	}
	typ := strings.ToUpper(strings.TrimSpace(p.s[start:p.i]))
	p.i++ // '='
	typ = strings.TrimPrefix(typ, "OID.")
	if typ == "" {
		return "", fmt.Errorf("empty attribute type at byte %d", start)
	}
	oid := typ[0] >= '0' && typ[0] <= '9'
	for j := 0; j < len(typ); j++ {
		c := typ[j]
		switch {
		case oid && (c >= '0' && c <= '9' || c == '.'):
		case !oid && (c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'):
		default:
			return "", fmt.Errorf("bad attribute type %q", typ)
		}
	}
	if oid && (strings.Contains(typ, "..") || strings.HasSuffix(typ, ".") || !strings.Contains(typ, ".")) {
		return "", fmt.Errorf("bad attribute OID %q", typ)
	}
	if n, ok := attributeNames[typ]; ok {
		typ = n
	}
	return typ, nil
}

// attrValue reads a value up to an unescaped separator and returns it in
// canonical form; ber reports a BER value kept as "#" + hex.
func (p *dnParser) attrValue() (val string, ber bool, err error) {
	p.skipSpaces()
	if p.i < len(p.s) && p.s[p.i] == '#' { // RFC 4514 2.4 hexstring: BER
		start := p.i + 1
		p.i++
		for p.i < len(p.s) && isHexDigit(p.s[p.i]) {
			p.i++
		}
		der, herr := hex.DecodeString(p.s[start:p.i])
		if herr != nil || len(der) == 0 {
			return "", false, errors.New("bad hex value")
		}
		// A BER string keeps the key of its text; another value stays hex.
		var raw asn1.RawValue
		if rest, err := asn1.Unmarshal(der, &raw); err == nil && len(rest) == 0 && raw.Class == asn1.ClassUniversal {
			switch raw.Tag {
			case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagT61String:
				if utf8.Valid(raw.Bytes) {
					return canonicalValue(string(raw.Bytes)), false, nil
				}
			}
		}
		return "#" + strings.ToLower(p.s[start:p.i]), true, nil
	}
	var buf []byte
	if p.i < len(p.s) && p.s[p.i] == '"' { // RFC 1779 quoted value
		p.i++
		for {
			if p.i == len(p.s) {
				return "", false, errors.New("unterminated quoted value")
			}
			c := p.s[p.i]
			if c == '"' {
				p.i++
				break
			}
			if c == '\\' {
				b, err := p.escape()
				if err != nil {
					return "", false, err
				}
				buf = append(buf, b)
				continue
			}
			buf = append(buf, c)
			p.i++
		}
	} else {
	loop:
		for p.i < len(p.s) {
			c := p.s[p.i]
			switch c {
			case ',', '+', ';':
				break loop
			case '\\':
				b, err := p.escape()
				if err != nil {
					return "", false, err
				}
				buf = append(buf, b)
			default:
				buf = append(buf, c)
				p.i++
			}
		}
	}
	if !utf8.Valid(buf) {
		return "", false, errors.New("value is not valid UTF-8")
	}
	return canonicalValue(string(buf)), false, nil
}

// escape reads "\c" or "\hh" (RFC 4514 2.4, 3).
func (p *dnParser) escape() (byte, error) {
	if p.i+1 >= len(p.s) {
		return 0, errors.New("'\\' at the end")
	}
	c := p.s[p.i+1]
	if isHexDigit(c) {
		if p.i+2 >= len(p.s) || !isHexDigit(p.s[p.i+2]) {
			return 0, fmt.Errorf("bad hex escape at byte %d", p.i)
		}
		b, _ := hex.DecodeString(p.s[p.i+1 : p.i+3])
		p.i += 3
		return b[0], nil
	}
	if !strings.ContainsRune(`"+,;<>\ #=`, rune(c)) {
		return 0, fmt.Errorf("bad escape %q at byte %d", c, p.i)
	}
	p.i += 2
	return c, nil
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
