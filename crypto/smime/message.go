package smime

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"strings"
)

// Messages are handled in canonical form (RFC 8551 3.1.1, RFC 5322 2.1):
// lines end in CRLF. toCRLF turns bare LF into CRLF and leaves everything
// else alone, so that a message read with LF endings signs and verifies the
// same as its CRLF form.
func toCRLF(b []byte) []byte {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// field is one header field as it appears, continuation lines and final
// CRLF included.
type field struct {
	name string // lower case
	raw  []byte
}

func (f field) value() string {
	i := bytes.IndexByte(f.raw, ':')
	v := string(f.raw[i+1:])
	v = strings.ReplaceAll(v, "\r\n", "")
	return strings.TrimSpace(v)
}

const maxHeaderFields = 1000

var errNoHeader = errors.New("smime: not a message: no header")

// splitMessage splits a CRLF message into its header fields and body (RFC
// 5322 2.1: the body follows the first empty line).
func splitMessage(msg []byte) ([]field, []byte, error) {
	var fields []field
	rest := msg
	for len(rest) > 0 {
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return fields, rest[2:], nil
		}
		// One field: this line and the continuation lines after it
		// (RFC 5322 2.2.3).
		end := 0
		for {
			i := bytes.Index(rest[end:], []byte("\r\n"))
			if i < 0 {
				end = len(rest)
				break
			}
			end += i + 2
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		line := rest[:end]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.ContainsAny(line[:colon], " \t\r\n") {
			if len(fields) == 0 {
				return nil, nil, errNoHeader
			}
			return nil, nil, fmt.Errorf("smime: malformed header line %d", len(fields)+1)
		}
		if len(fields) >= maxHeaderFields {
			return nil, nil, fmt.Errorf("smime: more than %d header fields", maxHeaderFields)
		}
		fields = append(fields, field{name: strings.ToLower(string(line[:colon])), raw: line})
		rest = rest[end:]
	}
	return fields, nil, nil
}

func get(fields []field, name string) (string, bool) {
	for _, f := range fields {
		if f.name == name {
			return f.value(), true
		}
	}
	return "", false
}

// mediaType returns the Content-Type of an entity (RFC 2045 5.2: text/plain
// when absent or invalid).
func mediaType(fields []field) (string, map[string]string) {
	v, ok := get(fields, "content-type")
	if !ok {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return "text/plain", map[string]string{}
	}
	return mt, params
}

// isMIMEField tells whether a field describes the body entity (RFC 2045 9:
// Content-* fields) rather than the message.
func isMIMEField(name string) bool {
	return strings.HasPrefix(name, "content-")
}

// protectedOuter are the fields kept in the outer header when the whole
// message is wrapped as message/rfc822 before signing (RFC 8551 3.1 and RFC
// 5751 3.1: the wrapped message is protected, the outer header is an
// unprotected copy). The Direct Project's Applicability Statement for
// Secure Health Transport wraps every message and copies out only "the
// minimal required routing headers" (Direct wiki, Protecting Transport
// Headers): here, what transport, threading, display before opening and
// MDNs (RFC 8098 2; Direct's Disposition-Notification-Options) need.
// Subject is kept, as clients show it in lists, though it may carry health
// data; Bcc is never copied out.
var protectedOuter = map[string]bool{
	"from": true, "sender": true, "reply-to": true,
	"to": true, "cc": true,
	"date": true, "subject": true,
	"message-id": true, "in-reply-to": true, "references": true,
	"disposition-notification-to":      true,
	"disposition-notification-options": true,
	"return-path":                      true, "received": true,
	"resent-date": true, "resent-from": true, "resent-sender": true,
	"resent-to": true, "resent-cc": true, "resent-message-id": true,
}

// base64Lines encodes b in lines of 76 characters (RFC 2045 6.8).
func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	out.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		out.WriteString(enc[:76])
		out.WriteString("\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	out.WriteString("\r\n")
	return out.Bytes()
}

// decodeBase64 reads a base64 body, ignoring line breaks and other white
// space (RFC 2045 6.8).
func decodeBase64(b []byte) ([]byte, error) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err == nil {
		return out[:n], nil
	}
	// Some writers drop the final padding.
	raw := bytes.TrimRight(clean, "=")
	out = make([]byte, base64.RawStdEncoding.DecodedLen(len(raw)))
	n, err2 := base64.RawStdEncoding.Decode(out, raw)
	if err2 != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	return out[:n], nil
}

// multipartParts returns the raw body parts of a multipart body (RFC 2046
// 5.1.1: the CRLF before a delimiter belongs to the delimiter), at most max.
func multipartParts(body []byte, boundary string, max int) ([][]byte, error) {
	if boundary == "" || len(boundary) > 70 {
		return nil, fmt.Errorf("%w: bad multipart boundary", ErrMalformed)
	}
	delim := []byte("--" + boundary)
	var pos int
	if bytes.HasPrefix(body, delim) {
		pos = 0
	} else {
		i := bytes.Index(body, append([]byte("\r\n"), delim...))
		if i < 0 {
			return nil, fmt.Errorf("%w: multipart boundary not found", ErrMalformed)
		}
		pos = i + 2
	}
	var parts [][]byte
	for {
		after := body[pos+len(delim):]
		if bytes.HasPrefix(after, []byte("--")) {
			return parts, nil // close delimiter
		}
		eol := bytes.Index(after, []byte("\r\n"))
		if eol < 0 {
			return nil, fmt.Errorf("%w: truncated multipart", ErrMalformed)
		}
		// Transport padding after the delimiter (RFC 2046 5.1.1).
		if len(bytes.Trim(after[:eol], " \t")) != 0 {
			return nil, fmt.Errorf("%w: text after multipart delimiter", ErrMalformed)
		}
		start := pos + len(delim) + eol + 2
		j := bytes.Index(body[start:], append([]byte("\r\n"), delim...))
		if j < 0 {
			return nil, fmt.Errorf("%w: multipart not closed", ErrMalformed)
		}
		parts = append(parts, body[start:start+j])
		if len(parts) > max {
			return nil, fmt.Errorf("%w: more than %d parts", ErrMalformed, max)
		}
		pos = start + j + 2
	}
}
