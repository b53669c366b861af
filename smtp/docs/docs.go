// Package docs reads the structured documents (a discharge letter as CDA,
// alone or in an IHE XDM package) of the mail Relais delivers, inbound or
// local: it adds the verdict header to the stored copies, records each
// document with the recipient's copy (the "document received" event the
// chat turns into notifications: storage publishes ChangeDocumentReceived),
// and answers the sender of a document that cannot be integrated with the
// error MDN or error mail of the CI-SIS guide (package document).
//
// Invalid documents are still delivered: the mail is the record, the
// header and the event say what is wrong.
package docs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/relais-mssante/relais/document"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
)

// Store is what Inspector needs of storage.
type Store interface {
	AddDocuments(ctx context.Context, docs []storage.DocumentRecord) ([]storage.DocumentID, error)
	HasDomain(ctx context.Context, name string) (bool, error)
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error)
	Enqueue(ctx context.Context, out storage.Outbound) (storage.QueueID, error)
}

// Inspector is smtpd.Documents.
type Inspector struct {
	Store    Store
	Hostname string
	// Signer signs the answers that leave for another operator, as the
	// recipient who could not integrate the document.
	Signer smtpd.Signer
	// Relay is told when an answer was queued; may be nil.
	Relay  interface{ Kick() }
	Logger *slog.Logger
	Now    func() time.Time
	Limits document.Limits
	// Expiry of queued answers (5 days when zero).
	Expiry time.Duration
	// Received, when set, is called with each document once it is
	// recorded (the chat posts its notifications from it).
	Received func(ctx context.Context, doc storage.DocumentRecord)
}

var _ smtpd.Documents = (*Inspector)(nil)

func (in *Inspector) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Inspector) log() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Inspect removes verdict headers a sender may have forged, analyses the
// message and, when it carries structured documents (or a broken attempt
// at one), prepends the verdict and returns the function that records
// them after the commit.
func (in *Inspector) Inspect(ctx context.Context, sender string, msg []byte) ([]byte, func(context.Context, []smtpd.DeliveredCopy)) {
	clean := document.RemoveHeaderFields(msg)
	a := document.Analyze(clean, in.Limits)
	if !a.Has() {
		return clean, nil
	}
	out := append([]byte(a.HeaderFields()), clean...)
	return out, func(ctx context.Context, copies []smtpd.DeliveredCopy) {
		in.record(ctx, sender, clean, a, copies)
	}
}

// record stores one record per document and recipient copy, then answers
// an invalid document. Failures are logged: the mail itself is safe.
func (in *Inspector) record(ctx context.Context, sender string, msg []byte, a document.Analysis, copies []smtpd.DeliveredCopy) {
	events := a.Events()
	names := patientNames(a)
	now := in.now()
	var recs []storage.DocumentRecord
	for _, c := range copies {
		for i, ev := range events {
			meta, err := json.Marshal(struct {
				Event    document.Event
				Document *document.Document `json:",omitempty"`
			}{ev, docAt(a, i)})
			if err != nil || len(meta) > 1<<20 {
				meta = nil
			}
			recs = append(recs, storage.DocumentRecord{
				Account: c.Account, Mailbox: c.Mailbox, UID: c.UID,
				MessageID: strings.Trim(a.MessageID, "<>"), Recipient: c.Address,
				PatientINS: ev.PatientINS, INSKind: ev.INSKind, PatientName: names[i],
				TypeCode: ev.TypeCode, TypeDisplay: ev.TypeDisplay, Title: ev.Title,
				AuthorID: ev.AuthorID, AuthorName: ev.AuthorName, Custodian: ev.Custodian,
				Valid: ev.Valid, Problems: problemText(ev.Problems), Metadata: meta, Received: now,
			})
		}
	}
	if len(recs) > 0 {
		ids, err := in.Store.AddDocuments(ctx, recs)
		if err != nil {
			in.log().Error("recording structured documents", "err", err, "documents", len(recs))
		} else {
			in.log().Info("structured documents received", "documents", len(events), "copies", len(copies), "valid", a.Valid())
			if in.Received != nil {
				for i := range recs {
					recs[i].ID = ids[i]
					in.Received(ctx, recs[i])
				}
			}
		}
	}
	if a.Valid() || sender == "" {
		return
	}
	// One answer per recipient who could not integrate it, from that
	// recipient, about the first blocking problem.
	p, ok := firstProblem(a)
	if !ok {
		return
	}
	for _, c := range copies {
		if err := in.answer(ctx, msg, c.Address, p, now); err != nil {
			in.log().Warn("answer to an invalid document not sent", "err", err, "code", p.Code)
		}
	}
}

// answer sends the error MDN or error mail from rcpt to the sender, with
// a null reverse-path (RFC 8098 2.1, RFC 3834 3.3): straight into a local
// sender's INBOX, or signed and queued for another operator's.
func (in *Inspector) answer(ctx context.Context, original []byte, rcpt string, p document.Problem, now time.Time) error {
	reply, to, err := document.Answer(original, rcpt, p, now, in.Hostname)
	if errors.Is(err, document.ErrNotAnswerable) || errors.Is(err, document.ErrMDNNeedsConsent) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("building the answer: %w", err)
	}
	domain := to[strings.LastIndexByte(to, '@')+1:]
	local, err := in.Store.HasDomain(ctx, strings.ToLower(domain))
	if err != nil {
		return fmt.Errorf("looking up %s: %w", domain, err)
	}
	if local {
		acct, err := in.Store.AccountByAddress(ctx, to)
		if err != nil {
			return fmt.Errorf("the sender %s: %w", to, err)
		}
		raw := append([]byte("Return-Path: <>\r\n"), reply...)
		_, err = in.Store.Deliver(ctx, raw, now, []storage.Recipient{{Account: acct.ID, Mailbox: "INBOX"}})
		return err
	}
	if in.Signer != nil {
		if reply, err = in.Signer.Sign(ctx, rcpt, reply); err != nil {
			return fmt.Errorf("signing the answer: %w", err)
		}
	}
	expiry := in.Expiry
	if expiry <= 0 {
		expiry = 5 * 24 * time.Hour
	}
	if _, err := in.Store.Enqueue(ctx, storage.Outbound{
		Sender: "", Raw: reply, Recipients: []storage.OutboundRecipient{{Address: to, Notify: []string{storage.NotifyNever}}},
		Expires: now.Add(expiry),
	}); err != nil {
		return fmt.Errorf("queueing the answer: %w", err)
	}
	if in.Relay != nil {
		in.Relay.Kick()
	}
	return nil
}

// firstProblem is the blocking problem the answer names: a document's
// first, else the message's first; warnings never make an answer.
func firstProblem(a document.Analysis) (document.Problem, bool) {
	for _, d := range a.Documents {
		for _, p := range d.Problems {
			if !p.Warning {
				return p, true
			}
		}
	}
	for _, p := range a.Problems {
		if !p.Warning {
			return p, true
		}
	}
	return document.Problem{}, false
}

func docAt(a document.Analysis, i int) *document.Document {
	if i < len(a.Documents) {
		return &a.Documents[i]
	}
	return nil
}

func patientNames(a document.Analysis) []string {
	out := make([]string, len(a.Events()))
	for i := range out {
		if d := docAt(a, i); d != nil {
			p := d.Header.Patient
			out[i] = strings.TrimSpace(p.Family + " " + strings.Join(p.Given, " "))
		}
	}
	return out
}

func problemText(ps []document.Problem) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Code != 0 {
			fmt.Fprintf(&b, "%d ", p.Code)
		}
		b.WriteString(p.Text)
		if p.Warning {
			b.WriteString(" (warning)")
		}
	}
	return b.String()
}
