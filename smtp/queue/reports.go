package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
)

// ReportStore is what Reports needs of storage.
type ReportStore interface {
	DeliveryStatuses(ctx context.Context, acct storage.AccountID, messageID string) ([]storage.DeliveryStatus, error)
	SetDeliveryStatus(ctx context.Context, acct storage.AccountID, st storage.DeliveryStatus) error
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error)
	Enqueue(ctx context.Context, out storage.Outbound) (storage.QueueID, error)
}

// Reports handles delivery reports around inbound delivery (smtpd.Reports):
// DSNs and MDNs that arrive for a local sender update the delivery status
// of the message they are about, and a NOTIFY=SUCCESS delivery gets its
// "delivered" DSN.
type Reports struct {
	Hostname string // Reporting-MTA
	Store    ReportStore
	Logger   *slog.Logger
	// Relay is told when a report was queued (the Worker); may be nil.
	Relay interface{ Kick() }
	Now   func() time.Time
}

var _ smtpd.Reports = (*Reports)(nil)

func (r *Reports) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reports) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Incoming reads msg, delivered to the accounts rcpts: when it is a DSN
// (RFC 3464) or an MDN (RFC 8098) about a message one of them sent, the
// status of the recipients it names moves forward. Only rows the sender's
// submission created are updated: a report cannot invent a recipient.
func (r *Reports) Incoming(ctx context.Context, msg []byte, rcpts []storage.AccountID) {
	rep, err := report.Parse(msg)
	if err != nil {
		if !errors.Is(err, report.ErrNotReport) {
			r.log().Info("unreadable delivery report", "err", err)
		}
		return
	}
	msgID := strings.TrimSuffix(strings.TrimPrefix(rep.OriginalMessageID, "<"), ">")
	if msgID == "" {
		return
	}
	now := r.now()
	for _, acct := range rcpts {
		known, err := r.Store.DeliveryStatuses(ctx, acct, msgID)
		if err != nil {
			r.log().Error("reading delivery status", "err", err)
			continue
		}
		for _, rr := range rep.Recipients {
			state, detail, ok := rr.DeliveryState()
			if !ok {
				continue
			}
			addr := matchRecipient(known, rr)
			if addr == "" {
				continue
			}
			err := r.Store.SetDeliveryStatus(ctx, acct, storage.DeliveryStatus{
				MessageID: msgID, Recipient: addr, State: state, Detail: detail, Updated: now,
			})
			if err != nil {
				r.log().Error("recording delivery status", "err", err)
				continue
			}
			r.log().Info("delivery status from a report", "kind", string(rep.Kind), "state", string(state))
		}
	}
}

// matchRecipient finds the sender's recipient a report block is about: the
// final recipient, or the original recipient (ORCPT) when the address was
// rewritten on the way.
func matchRecipient(known []storage.DeliveryStatus, rr report.Recipient) string {
	candidates := []string{rr.FinalRecipient}
	if _, orcpt, ok := strings.Cut(rr.OriginalRecipient, ";"); ok {
		candidates = append(candidates, strings.TrimSpace(orcpt))
	}
	for _, c := range candidates {
		for _, k := range known {
			if c != "" && strings.EqualFold(k.Recipient, c) {
				return k.Recipient
			}
		}
	}
	return ""
}

// Delivered sends the "delivered" DSN for an inbound delivery whose NOTIFY
// asked for SUCCESS (RFC 3461 4.1, RFC 3464 2.3.3).
func (r *Reports) Delivered(ctx context.Context, d smtpd.DeliveredReport) error {
	if d.Sender == "" || len(d.Recipients) == 0 {
		return nil // RFC 5321 6.1: never to the null reverse-path
	}
	now := r.now()
	var rcpts []report.Recipient
	for _, rc := range d.Recipients {
		rcpts = append(rcpts, report.Recipient{
			OriginalRecipient: rc.ORCPT,
			FinalRecipient:    rc.Address,
			Action:            report.ActionDelivered,
			Status:            "2.0.0",
			LastAttempt:       now,
		})
	}
	e := storage.QueueEntry{Sender: d.Sender, EnvID: d.EnvID, Ret: d.Ret, Created: d.Arrival}
	var kick func()
	if r.Relay != nil {
		kick = r.Relay.Kick
	}
	if err := sendReport(ctx, r.Store, r.Hostname, DefaultExpiry, e, d.Message, rcpts, now, kick); err != nil {
		return fmt.Errorf("success report: %w", err)
	}
	return nil
}
