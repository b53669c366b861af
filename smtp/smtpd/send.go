package smtpd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relais-mssante/relais/storage"
)

// RefusedError is a refusal of Send for a reason the caller can fix (a
// recipient outside the trust space, an unknown local user, a From that is
// not the account's): the SMTP reply submission would have given.
type RefusedError struct {
	Reply *smtp.SMTPError
	Err   error
}

func (e *RefusedError) Error() string { return e.Reply.Message + ": " + e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Message is the SMTP reply text, without the internal cause.
func (e *RefusedError) Message() string { return e.Reply.Message }

// Code is the SMTP reply code (5xx for a permanent refusal, 4xx for a
// temporary one).
func (e *RefusedError) Code() int { return e.Reply.Code }

// Send submits msg from acct to rcpts through the submission pipeline,
// without SMTP: the same policy (the account owns From, each recipient is
// local or in the trust space), the same signature, queue and delivery
// status, one transaction. The documents API uses it. It returns when the
// message is committed; a policy refusal is a *RefusedError.
func (s *Server) Send(ctx context.Context, acct storage.Account, rcpts []string, msg []byte) (err error) {
	if s.mode != modeSubmission {
		return errors.New("smtpd: Send needs the submission server")
	}
	start := time.Now()
	var tx transaction
	defer func() { s.observe("api", tx.rcpts, err, start) }()
	refuse := func(err error) error {
		for _, r := range replies {
			if errors.Is(err, r.err) {
				return &RefusedError{Reply: r.reply, Err: err}
			}
		}
		return err
	}
	if len(rcpts) == 0 || len(rcpts) > s.cfg.MaxRecipients {
		return &RefusedError{Reply: code(554, 5, 5, 3, fmt.Sprintf("Between 1 and %d recipients", s.cfg.MaxRecipients)), Err: errors.New("recipient count")}
	}
	if int64(len(msg)) > s.cfg.MaxMessageBytes {
		return refuse(fmt.Errorf("%d bytes: %w", len(msg), smtp.ErrDataTooLarge))
	}
	if err := checkReversePath(modeSubmission, &acct, acct.Address, !isASCII(acct.Address)); err != nil {
		return refuse(err)
	}
	if err := checkFromHeader(acct, msg); err != nil {
		return refuse(err)
	}
	tx = transaction{from: acct.Address, hasFrom: true, utf8: !isASCII(acct.Address)}
	for _, to := range rcpts {
		a, remote, err := resolveRecipient(ctx, s.store, s.cfg.Trust, s.cfg.Relay != nil, modeSubmission, s.cfg.Hostname, to, true)
		if err != nil {
			return refuse(err)
		}
		if !isASCII(to) {
			tx.utf8 = true
		}
		tx.rcpts = append(tx.rcpts, recipient{addr: to, account: a.ID, remote: remote})
	}
	now := time.Now()
	id := newID()
	// The API is HTTPS, not SMTP: the Received field says so (RFC 5321
	// 4.4: "with" names the protocol; the client is the API, whose caller
	// the API's own log records).
	var rcptClause string
	if r := singleRecipient(tx.rcpts); r != "" {
		rcptClause = "\r\n\tfor <" + r + ">"
	}
	trace := "Return-Path: <" + acct.Address + ">\r\nReceived: from documents-api\r\n\tby " + s.cfg.Hostname +
		" (Relais) with HTTPS id " + id + rcptClause + "; " + now.Format(time.RFC1123Z) + "\r\n"
	return s.submitMessage(ctx, acct, tx, trace, msg, now, id, s.log.With("api", "documents"))
}
