// Package smtpd runs Relais's SMTP listeners on github.com/emersion/go-smtp:
// the inbound MTA (port 25, mail from other operators, local recipients
// only) and message submission (ports 587 with STARTTLS and 465 with
// implicit TLS, authenticated practitioners and hospital software).
//
// Protocol code (session.go, auth.go) parses and answers; the decisions
// (who may send, where a recipient goes, which From is acceptable) are plain
// functions in policy.go; every error becomes an SMTP reply in one place,
// reply.go, which never puts internal causes on the wire and logs them with
// a correlation id instead.
//
// Specifications implemented (go-smtp does the wire syntax, this package the
// semantics):
//   - RFC 5321 SMTP: replies, trace headers (4.4), limits (4.5.3), timeouts (4.5.3.2)
//   - RFC 6409 message submission: authentication required, sender checks (6.1)
//   - RFC 4954 SMTP AUTH (PLAIN, RFC 4616; LOGIN, draft-murchison-sasl-login),
//     only over TLS
//   - RFC 3207 STARTTLS, RFC 8314 implicit TLS for submission (465)
//   - RFC 6531 SMTPUTF8, RFC 6152 8BITMIME, RFC 3030 CHUNKING and BINARYMIME
//   - RFC 2920 PIPELINING, RFC 1870 SIZE
//   - RFC 2034 and RFC 3463 enhanced status codes
//   - RFC 3848 "with" protocol types in Received (ESMTPSA, UTF8SMTPS...)
//
// DSN (RFC 3461) is not advertised: there is no outbound queue yet.
package smtpd
