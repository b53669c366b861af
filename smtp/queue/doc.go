// Package queue is Relais's outbound relay: a worker that takes due entries
// of the durable queue in storage, delivers each remote recipient to the
// operator of its domain over mutual TLS, retries with backoff, and tells
// the sender what happened with delivery status notifications.
//
// Delivery (deliver.go): one SMTP transaction per recipient, because each
// recipient gets its own encrypted copy and a Bcc must not appear in the
// others' RecipientInfos; one connection per domain and entry, RSET between
// transactions. STARTTLS is mandatory; the remote certificate must chain to
// the configured roots and its subject DN must be an operator of the
// MSSanté trust list that serves the recipient's domain. The worker presents
// the operator certificate as its TLS client certificate.
//
// Outcomes (worker.go): 2xx relayed; 5xx failed with a DSN; 4xx, network,
// TLS and trust errors deferred with backoff; past the entry's expiry,
// failed with a DSN (4.4.7); past DelayNotice, one delay DSN.
//
// Specifications implemented:
//   - RFC 5321 4.1.1.5 RSET, 4.5.4.1 retry strategy and give-up time,
//     4.5.5 and 6.1 (no report to the null reverse-path; at-least-once
//     delivery), 5.1 locating the target host (MX, implicit MX)
//   - RFC 7505 null MX
//   - RFC 3207 STARTTLS (required here, never a fallback to clear text)
//   - RFC 3461 DSN: NOTIFY, ORCPT, RET and ENVID passed on; a "relayed"
//     DSN when the next hop does not offer DSN and SUCCESS was asked (4.1,
//     5.2.2); NOTIFY=NEVER honoured
//   - RFC 3464 the reports themselves (package smtp/report), RFC 3463
//     status codes
//   - RFC 6531 SMTPUTF8 for non-ASCII addresses
//   - RFC 8098 MDN: requests travel in the message untouched; MDNs and DSNs
//     that come back update the delivery status (Reports)
package queue
