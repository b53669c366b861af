// Package imapd is Relais's IMAP server: a go-imap v2 (imapserver) Session
// backed by the storage contract and its per-account change feed.
//
// Implemented: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501), with
// STARTTLS and LOGINDISABLED before TLS (RFC 9051 6.2.1, 6.2.3), NAMESPACE
// (RFC 2342), UIDPLUS (RFC 4315), ESEARCH (RFC 4731), SEARCHRES (RFC 5182),
// LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), MOVE (RFC 6851),
// STATUS=SIZE (RFC 8438), SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154),
// LITERAL+ (RFC 7888), CHILDREN (RFC 3348), UNSELECT (RFC 3691), ENABLE
// (RFC 5161), IDLE (RFC 2177), APPENDLIMIT (RFC 7889), BINARY (RFC 3516)
// and UNAUTHENTICATE (RFC 8437).
//
// Each session keeps its own view of the selected mailbox (the UIDs the
// client knows, sequence number = index+1) and updates it from the account's
// change feed (storage.Subscription), so that EXISTS, EXPUNGE and FETCH
// FLAGS reach the client in an order that keeps its sequence numbers right
// (RFC 9051 7.5.1). FETCH is answered from storage.MessageInfo and the
// stored summary; the raw message is read only for body sections.
//
// Errors from storage never reach the client: they are logged with a
// correlation id that the NO reply carries. A panic inside a command is
// recovered, counted (Server.Panics) and logged; the server keeps serving.
package imapd
