package smtpd

import (
	"errors"
	"io"
	"net"

	"github.com/emersion/go-smtp"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// Refusals decided by policy.go and session.go. Each maps to exactly one
// reply in reply; their text is for logs.
var (
	errAuthRequired      = errors.New("authentication required before MAIL")
	errAuthzRefused      = errors.New("authorization identity differs from authentication identity")
	errNullSender        = errors.New("null reverse-path on submission")
	errSenderNotOwned    = errors.New("envelope sender not owned by the account")
	errNestedMail        = errors.New("nested MAIL command")
	errNeedSMTPUTF8      = errors.New("non-ASCII address without SMTPUTF8")
	errBadAddress        = errors.New("malformed address")
	errUnknownUser       = errors.New("no such local user")
	errRelayNotEnabled   = errors.New("recipient of another operator: relay not enabled")
	errRelayDenied       = errors.New("recipient not local: relaying denied")
	errOutsideTrustSpace = errors.New("recipient domain outside the MSSanté trust space")
	errNoFrom            = errors.New("no valid From header")
	errFromNotOwned      = errors.New("header From address not owned by the account")
	errShuttingDown      = errors.New("server shutting down")
	errTLSRequired       = errors.New("inbound MAIL before STARTTLS")
	errNoOperatorCert    = errors.New("no client certificate of an operator of the trust space")
	errSenderNotOperator = errors.New("sender domain not served by the operator of the client certificate")
	errNoSigningIdentity = errors.New("no S/MIME certificate to sign as the sender or its organisation")
)

// stage says which command failed, to choose the temporary reply for
// unexpected errors.
type stage int

const (
	stageConnect stage = iota
	stageAuth
	stageMail
	stageRcpt
	stageData
)

func code(c, class, subject, detail int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: c, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: msg}
}

// replies maps each known refusal to its reply. Codes: RFC 5321 4.2.2,
// enhanced codes RFC 3463 and the IANA registry (RFC 5248).
var replies = []struct {
	err   error
	reply *smtp.SMTPError
}{
	{errAuthRequired, code(530, 5, 7, 0, "Authentication required")},                                      // RFC 4954 6
	{errAuthzRefused, code(535, 5, 7, 8, "Authentication credentials invalid")},                           // RFC 4954 6
	{authn.ErrBadCredentials, code(535, 5, 7, 8, "Authentication credentials invalid")},                   // RFC 4954 6
	{authn.ErrThrottled, code(454, 4, 7, 0, "Too many failed authentications, try again later")},          // RFC 4954 6
	{errNullSender, code(553, 5, 7, 1, "Null sender not allowed for submission")},                         // RFC 6409 6.1
	{errSenderNotOwned, code(553, 5, 7, 1, "Sender address not owned by the authenticated account")},      // RFC 6409 6.1
	{errNestedMail, code(503, 5, 5, 1, "Nested MAIL command")},                                            // RFC 5321 4.1.4
	{errNeedSMTPUTF8, code(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8")},                          // RFC 6531 3.6.1
	{errBadAddress, code(553, 5, 1, 3, "Malformed address")},                                              // RFC 3463 3.2
	{errUnknownUser, code(550, 5, 1, 1, "No such user here")},                                             // RFC 5321 3.3
	{errRelayNotEnabled, code(550, 5, 7, 1, "Relay to other operators is not enabled")},                   //
	{errRelayDenied, code(550, 5, 7, 1, "Relaying denied")},                                               // RFC 5321 3.6.2
	{errOutsideTrustSpace, code(550, 5, 7, 1, "Recipient domain is not in the MSSante trust space")},      // RFC 3463 5.7.1: delivery not authorized
	{errNoFrom, code(550, 5, 6, 0, "Message has no valid From header")},                                   // RFC 5322 3.6
	{errFromNotOwned, code(550, 5, 7, 1, "From address not owned by the authenticated account")},          // RFC 6409 8.1
	{errShuttingDown, code(421, 4, 3, 2, "Service shutting down, try again later")},                       // RFC 5321 3.8
	{errTLSRequired, code(530, 5, 7, 0, "Must issue a STARTTLS command first")},                           // RFC 3207 4
	{errNoOperatorCert, code(550, 5, 7, 1, "A client certificate of an MSSante operator is required")},    // RFC 3463 5.7.1
	{errSenderNotOperator, code(550, 5, 7, 1, "Sender domain is not served by your operator")},            // RFC 3463 5.7.1
	{errNoSigningIdentity, code(451, 4, 7, 5, "No signing certificate for this sender, try again later")}, // RFC 5248 X.7.5 cryptographic failure
	{smtp.ErrDataTooLarge, code(552, 5, 3, 4, "Message exceeds the maximum size")},                        // RFC 1870 6.3
	{storage.ErrTooLarge, code(552, 5, 3, 4, "Message exceeds the maximum size")},                         // RFC 1870 6.3
	{smtp.ErrTooLongLine, code(500, 5, 5, 2, "Line too long")},                                            // RFC 5321 4.5.3.1.6
	{smtp.ErrDataReset, code(451, 4, 3, 0, "Message transfer aborted")},                                   // RFC 3030 2
}

// reply turns err into the SMTP reply the client sees. Known refusals get
// their fixed reply; anything else is an internal failure: logged in full
// with a correlation id, answered with a temporary failure that carries only
// that id (no internals, no data loss claimed).
func (sess *session) reply(err error, st stage) error {
	var smtpErr *smtp.SMTPError
	for _, r := range replies {
		if errors.Is(err, r.err) {
			if r.reply.Code >= 500 || r.reply.Code == 421 {
				sess.log.Info("refused", "stage", st.String(), "reason", err.Error(), "code", r.reply.Code)
			}
			return r.reply
		}
	}
	if errors.As(err, &smtpErr) {
		return smtpErr
	}
	// The client went away or stalled during a transfer: nothing to log as
	// an internal error, and the reply will probably not be read.
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		sess.log.Info("client timed out", "stage", st.String())
		return code(421, 4, 4, 2, "Timeout, closing connection") // RFC 5321 4.5.3.2
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		sess.log.Info("connection lost", "stage", st.String())
		return code(451, 4, 4, 2, "Connection lost during transfer")
	}
	ref := newID()
	sess.log.Error("internal error", "stage", st.String(), "ref", ref, "err", err)
	if st == stageAuth {
		return code(454, 4, 7, 0, "Temporary authentication failure (ref "+ref+")") // RFC 4954 6
	}
	return code(451, 4, 3, 0, "Temporary local error, try again later (ref "+ref+")") // RFC 3463 3.4
}

func (st stage) String() string {
	switch st {
	case stageConnect:
		return "connect"
	case stageAuth:
		return "auth"
	case stageMail:
		return "mail"
	case stageRcpt:
		return "rcpt"
	}
	return "data"
}

func isThrottled(err error) bool      { return errors.Is(err, authn.ErrThrottled) }
func isBadCredentials(err error) bool { return errors.Is(err, authn.ErrBadCredentials) }
