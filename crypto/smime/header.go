package smime

import (
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"
)

// headerName is the human-readable field Header writes.
const headerName = "X-Relais-SMIME"

// Header returns the header fields to prepend to the delivered message,
// each ending in CRLF:
//
//   - Authentication-Results (RFC 8601 2.2) with the smime method of RFC
//     7281 3: the verdict, a reason, and the signer's identity as the
//     body.smime-identifier, body.smime-serial and body.smime-issuer
//     properties;
//   - X-Relais-SMIME, one sentence a mail client can show: who signed,
//     whether the chain was verified and to which root, the revocation
//     status, whether the message was encrypted, or why verification
//     failed.
//
// Every string taken from a certificate or an error is cleaned of control
// characters; non-ASCII text in X-Relais-SMIME is RFC 2047 encoded.
func (r Result) Header(authservID string) string {
	verdict := r.Verdict
	if verdict == "" {
		verdict = "none"
	}
	var ar strings.Builder
	fmt.Fprintf(&ar, "Authentication-Results: %s;", asciiToken(authservID))
	ar.WriteString(" smime=" + verdict)
	if r.Err != nil {
		ar.WriteString(" reason=" + quoted(r.Err.Error()))
	}
	if r.Signer != nil {
		if r.SignerAddress != "" {
			ar.WriteString(" body.smime-identifier=" + quoted(r.SignerAddress))
		}
		ar.WriteString(" body.smime-serial=" + r.Signer.SerialNumber.Text(16))
		ar.WriteString(" body.smime-issuer=" + quoted(r.Signer.Issuer.String()))
	}
	return fold(ar.String()) + fold(headerName+": "+encodeText(r.summary()))
}

// summary is the sentence of X-Relais-SMIME.
func (r Result) summary() string {
	var parts []string
	switch {
	case r.Signed && r.Signer != nil:
		who := commonName(r.Signer)
		if r.SignerAddress != "" {
			who += " <" + r.SignerAddress + ">"
		}
		if r.Verdict == "pass" {
			parts = append(parts, "signature valid, signed by "+who)
		} else {
			parts = append(parts, "signature NOT verified ("+errText(r.Err)+"), signer "+who)
		}
		if r.Chain == "ok" {
			parts = append(parts, "certificate chain verified to "+r.ChainRoot)
		}
		switch {
		case strings.HasPrefix(r.Revocation, "good"):
			parts = append(parts, "not revoked"+strings.TrimPrefix(r.Revocation, "good"))
		case r.Chain == "ok":
			parts = append(parts, "revocation "+r.Revocation)
		}
	case r.Signed:
		parts = append(parts, "signature NOT verified ("+errText(r.Err)+")")
	case r.Err != nil:
		parts = append(parts, "S/MIME NOT processed ("+errText(r.Err)+")")
	default:
		parts = append(parts, "not signed")
	}
	if r.Encrypted {
		parts = append(parts, "was encrypted")
	} else if !r.Signed && r.Err == nil {
		parts = append(parts, "not encrypted")
	}
	return strings.Join(parts, ", ")
}

func errText(err error) string {
	if err == nil {
		return "unknown reason"
	}
	return err.Error()
}

// clean drops control characters and caps the length of text that comes
// from the message (certificate names, error details).
func clean(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError {
			c = ' '
		}
		b.WriteRune(c)
		if b.Len() > 400 {
			b.WriteString("...")
			break
		}
	}
	return b.String()
}

// quoted makes an RFC 5322 3.2.4 quoted-string of ASCII text (RFC 8601 2.2
// value).
func quoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range clean(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c >= 0x80:
			b.WriteByte('?')
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func asciiToken(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c > 0x20 && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, c) || c == '.' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}

// encodeText RFC 2047-encodes text that is not ASCII.
func encodeText(s string) string {
	s = clean(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// fold wraps a field at spaces so that lines stay under 78 characters
// where possible (RFC 5322 2.2.3) and ends it with CRLF.
func fold(f string) string {
	words := strings.Split(f, " ")
	var b strings.Builder
	line := 0
	for i, w := range words {
		if i > 0 {
			if line+1+len(w) > 76 {
				b.WriteString("\r\n ")
				line = 1
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}
