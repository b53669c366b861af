// Package report builds and reads delivery reports: the delivery status
// notifications Relais sends to a sender (DSN, RFC 3464) and the DSNs and
// message disposition notifications (MDN, RFC 8098) that come back about a
// message a local account sent.
//
// Specifications implemented:
//   - RFC 6522 multipart/report
//   - RFC 3464 message/delivery-status (2.2 per-message fields, 2.3
//     per-recipient fields, 3 conformance: the human-readable part first,
//     the returned message or its headers last)
//   - RFC 3461 4.3 RET (the returned content), 4.4 ENVID, 4.2 ORCPT
//   - RFC 3463 enhanced status codes in Status
//   - RFC 8098 3.2 message/disposition-notification (read, for MDNs)
//   - RFC 6533 message/global-delivery-status for non-ASCII addresses
//   - RFC 3834 5 Auto-Submitted: auto-replied on every report we make
//
// Parse reads untrusted input: it bounds the size it looks at, the number
// of parts, of fields and of recipients, and never panics (FuzzParse).
package report
