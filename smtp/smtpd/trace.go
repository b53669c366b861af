package smtpd

import (
	"crypto/tls"
	"net"
	"strings"
	"time"
)

// traceInfo is what the trace headers record about one transaction.
type traceInfo struct {
	from     string // reverse-path, "" for <>
	helo     string
	remote   net.Addr
	hostname string
	tls      *tlsInfo
	auth     bool
	utf8     bool
	id       string
	rcpt     string // the recipient when there is exactly one, else ""
	date     time.Time
}

// traceHeaders returns the Return-Path and Received header fields prepended
// at final delivery (RFC 5321 4.4), CRLF-terminated:
//
//	Return-Path: <reverse-path>
//	Received: from HELO ([IP])
//		(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)
//		by hostname (Relais) with ESMTPSA id ID
//		for <rcpt>; date
//
// There is no reverse DNS lookup: the TCP-info is the address literal
// alone. The protocol is RFC 3848's (ESMTP, ESMTPS, ESMTPA, ESMTPSA) or
// RFC 6531 3.7.3's (UTF8SMTP...) when SMTPUTF8 was used.
func traceHeaders(t traceInfo) string {
	var b strings.Builder
	b.WriteString("Return-Path: <")
	b.WriteString(t.from)
	b.WriteString(">\r\nReceived: from ")
	b.WriteString(cleanHelo(t.helo))
	b.WriteString(" (")
	b.WriteString(addressLiteral(t.remote))
	b.WriteString(")\r\n")
	if t.tls != nil {
		b.WriteString("\t(using ")
		b.WriteString(strings.Replace(tls.VersionName(t.tls.version), "TLS ", "TLSv", 1)) // as Postfix writes it
		b.WriteString(" with cipher ")
		b.WriteString(tls.CipherSuiteName(t.tls.cipher))
		b.WriteString(")\r\n")
	}
	b.WriteString("\tby ")
	b.WriteString(t.hostname)
	b.WriteString(" (Relais) with ")
	b.WriteString(protocol(t.utf8, t.tls != nil, t.auth))
	b.WriteString(" id ")
	b.WriteString(t.id)
	if t.rcpt != "" {
		b.WriteString("\r\n\tfor <")
		b.WriteString(t.rcpt)
		b.WriteString(">")
	}
	b.WriteString("; ")
	b.WriteString(t.date.Format(time.RFC1123Z)) // RFC 5322 3.3 date-time
	b.WriteString("\r\n")
	return b.String()
}

// protocol is the "with" keyword: RFC 3848 2 and RFC 6531 3.7.3.
func protocol(utf8, tls, auth bool) string {
	p := "ESMTP"
	if utf8 {
		p = "UTF8SMTP"
	}
	if tls {
		p += "S"
	}
	if auth {
		p += "A"
	}
	return p
}

// addressLiteral is RFC 5321 4.1.3's address literal for the peer's IP.
func addressLiteral(addr net.Addr) string {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		if addr == nil {
			return "unknown"
		}
		host, _, err := net.SplitHostPort(addr.String())
		if err != nil {
			return "unknown"
		}
		ip = net.ParseIP(host)
	}
	if ip == nil {
		return "unknown"
	}
	if v4 := ip.To4(); v4 != nil {
		return "[" + v4.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// cleanHelo keeps the client's HELO/EHLO argument safe to put in a header:
// no controls, no parentheses or backslashes that would break the comment
// syntax, bounded length.
func cleanHelo(helo string) string {
	var b strings.Builder
	for _, r := range helo {
		if b.Len() >= 255 {
			break
		}
		if r <= ' ' || r == 0x7f || r == '(' || r == ')' || r == '\\' || r == ';' {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}
