package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
)

// This file holds the decisions, as plain functions tests call without a
// socket: who may send, where a recipient goes, which From is acceptable,
// which copies a message makes.

// checkOperator decides whether an inbound MAIL may start: only an
// operator of the MSSanté trust space, over TLS (RFC 3207 4), authenticated
// by its client certificate, sends to port 25; the sender's domain must be
// one of that operator's domains, except for the null sender (bounces and
// reports). op is the operator found from the certificate, nil when the
// client gave none or one that is not listed.
func checkOperator(tlsOn bool, op *directory.Operator, from string) error {
	if !tlsOn {
		return errTLSRequired
	}
	if op == nil {
		return errNoOperatorCert
	}
	if from == "" {
		return nil
	}
	_, domain, err := splitAddress(from)
	if err != nil {
		return fmt.Errorf("MAIL FROM %q: %w", from, err)
	}
	if !op.Serves(domain) {
		return fmt.Errorf("MAIL FROM domain %q, operator %q: %w", domain, op.DN, errSenderNotOperator)
	}
	return nil
}

// checkReversePath decides MAIL FROM. Submission (RFC 6409 6.1): the
// account authenticated and owns the address; the null reverse-path is
// refused (only MTAs send bounces). Inbound: any address, including <>
// (RFC 5321 4.5.5); checkOperator decides who may send.
func checkReversePath(m mode, acct *storage.Account, from string, utf8Allowed bool) error {
	if m == modeSubmission && acct == nil {
		return errAuthRequired
	}
	if from != "" {
		if _, _, err := splitAddress(from); err != nil {
			return fmt.Errorf("MAIL FROM %q: %w", from, err)
		}
		if !utf8Allowed && !isASCII(from) {
			return fmt.Errorf("MAIL FROM: %w", errNeedSMTPUTF8) // RFC 6531 3.4
		}
	}
	if m == modeInbound {
		return nil
	}
	if from == "" {
		return errNullSender
	}
	if !ownsAddress(*acct, from) {
		return fmt.Errorf("MAIL FROM %q, account %d: %w", from, acct.ID, errSenderNotOwned)
	}
	return nil
}

// resolveRecipient decides RCPT TO: the address must be in a local domain
// and name an existing account (local accounts are the local entries of
// the directory), or, on submission with relay enabled, be in a domain of
// the MSSanté trust space (remote is then true). Inbound never relays (RFC
// 5321 3.6.2). A domain outside the trust space is refused for good: mail
// never leaves it. "postmaster" without a domain is taken in hostname's
// domain (RFC 5321 4.5.1).
func resolveRecipient(ctx context.Context, accts Accounts, trust TrustSpace, relay bool, m mode, hostname, addr string, utf8Allowed bool) (acct storage.Account, remote bool, err error) {
	if strings.EqualFold(addr, "postmaster") {
		addr = "postmaster@" + hostname
	}
	localPart, domain, err := splitAddress(addr)
	if err != nil {
		return storage.Account{}, false, fmt.Errorf("RCPT TO %q: %w", addr, err)
	}
	if !utf8Allowed && !isASCII(addr) {
		return storage.Account{}, false, fmt.Errorf("RCPT TO: %w", errNeedSMTPUTF8)
	}
	local, err := isLocalDomain(ctx, accts, domain)
	if err != nil {
		return storage.Account{}, false, err
	}
	if !local {
		if m != modeSubmission {
			return storage.Account{}, false, fmt.Errorf("RCPT TO domain %q: %w", domain, errRelayDenied)
		}
		trusted := false
		if trust != nil && isASCII(domain) && !strings.HasPrefix(domain, "[") {
			if trusted, err = trust.DomainTrusted(ctx, domain); err != nil {
				return storage.Account{}, false, fmt.Errorf("looking up the trust list: %w", err)
			}
		}
		if !trusted {
			return storage.Account{}, false, fmt.Errorf("RCPT TO domain %q: %w", domain, errOutsideTrustSpace)
		}
		if !relay {
			return storage.Account{}, false, fmt.Errorf("RCPT TO domain %q: %w", domain, errRelayNotEnabled)
		}
		return storage.Account{}, true, nil
	}
	acct, err = accts.AccountByAddress(ctx, localPart+"@"+domain)
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrInvalid) {
		return storage.Account{}, false, fmt.Errorf("RCPT TO %q: %w", addr, errUnknownUser)
	}
	if err != nil {
		return storage.Account{}, false, fmt.Errorf("looking up recipient: %w", err)
	}
	return acct, false, nil
}

// isLocalDomain reports whether domain is served here. Domains are stored
// as A-labels; a domain the store finds invalid (a domain literal, a
// U-label) is not local.
func isLocalDomain(ctx context.Context, accts Accounts, domain string) (bool, error) {
	if strings.HasPrefix(domain, "[") || !isASCII(domain) {
		return false, nil
	}
	ok, err := accts.HasDomain(ctx, domain)
	if errors.Is(err, storage.ErrInvalid) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up domain: %w", err)
	}
	return ok, nil
}

// splitAddress splits local@domain at the last @ and lower-cases the
// domain.
func splitAddress(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 || !utf8.ValidString(addr) || strings.ContainsAny(addr, " \t\r\n<>") {
		return "", "", errBadAddress
	}
	return addr[:i], strings.TrimSuffix(strings.ToLower(addr[i+1:]), "."), nil
}

// ownsAddress reports whether addr is the account's address. Domains are
// case-insensitive (RFC 5321 2.4); local parts are too in Relais (the store
// looks them up case-insensitively). Aliases will extend this.
func ownsAddress(acct storage.Account, addr string) bool {
	l1, d1, err1 := splitAddress(acct.Address)
	l2, d2, err2 := splitAddress(addr)
	return err1 == nil && err2 == nil && d1 == d2 && strings.EqualFold(l1, l2)
}

// checkFromHeader checks the message header of a submission: there is a
// From header, and each address in it belongs to the account (RFC 6409
// 8.1 lets the MSA refuse; we do, so that nobody sends as a colleague).
func checkFromHeader(acct storage.Account, msg []byte) error {
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(hdr) > 0) {
		return fmt.Errorf("parsing header: %v: %w", err, errNoFrom)
	}
	values := hdr.Values("From")
	if len(values) != 1 { // RFC 5322 3.6: exactly one From
		return fmt.Errorf("%d From headers: %w", len(values), errNoFrom)
	}
	list, err := addressParser.ParseList(values[0])
	if err != nil || len(list) == 0 {
		return fmt.Errorf("parsing the From header: %v: %w", err, errNoFrom)
	}
	for _, a := range list {
		if !ownsAddress(acct, a.Address) {
			return fmt.Errorf("header address %q, account %d: %w", a.Address, acct.ID, errFromNotOwned)
		}
	}
	return nil
}

// addressParser decodes RFC 2047 display names in any charset leniently:
// only the addresses matter here.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
}}

// deliveries lists the copies of a message: one INBOX copy per distinct
// local account, and for a submission the sender's copy in Sent, already
// \Seen. All go to storage in one Deliver call, one transaction.
func deliveries(m mode, sender *storage.Account, accounts []storage.AccountID) []storage.Recipient {
	seen := make(map[storage.AccountID]bool, len(accounts))
	out := make([]storage.Recipient, 0, len(accounts)+1)
	for _, a := range accounts {
		if seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, storage.Recipient{Account: a, Mailbox: "INBOX"})
	}
	if m == modeSubmission && sender != nil {
		out = append(out, storage.Recipient{Account: sender.ID, Mailbox: "Sent", SpecialUse: storage.SpecialUseSent, Flags: []string{storage.FlagSeen}})
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// messageID returns the message's Message-ID without angle brackets, or
// "" when it has none.
func messageID(msg []byte) string {
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(hdr) > 0) {
		return ""
	}
	v := strings.TrimSpace(hdr.Get("Message-Id"))
	return strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
}

// addMessageID makes a Message-ID from the transaction id and hostname and
// prepends it (RFC 6409 8.3, RFC 5322 3.6.4).
func addMessageID(msg []byte, hostname, id string, now time.Time) (string, []byte) {
	mid := fmt.Sprintf("%d.%s@%s", now.UnixNano(), id, hostname)
	out := make([]byte, 0, len(msg)+len(mid)+16)
	out = append(out, "Message-ID: <"+mid+">\r\n"...)
	return mid, append(out, msg...)
}
