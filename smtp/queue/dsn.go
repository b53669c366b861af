package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/storage"
)

// report sends one DSN to the entry's sender about the outcomes (nothing
// when there are none, or when the sender is the null reverse-path: RFC
// 5321 4.5.5 and 6.1, RFC 3461 5.2.1).
func (w *Worker) report(ctx context.Context, e storage.QueueEntry, raw []byte, outcomes []outcome, now time.Time) error {
	if len(outcomes) == 0 || e.Sender == "" {
		return nil
	}
	var rcpts []report.Recipient
	for _, o := range outcomes {
		r := report.Recipient{
			OriginalRecipient: o.rcpt.ORCPT,
			FinalRecipient:    o.rcpt.Address,
			Status:            o.status,
			RemoteMTA:         o.host,
			Diagnostic:        o.reply,
			LastAttempt:       now,
		}
		switch o.kind {
		case relayed:
			r.Action = report.ActionRelayed // RFC 3464 2.3.3
		case failed:
			r.Action = report.ActionFailed
		case deferred:
			if !now.Before(e.Expires) {
				r.Action = report.ActionFailed
			} else {
				r.Action, r.WillRetryUntil = report.ActionDelayed, e.Expires
			}
		}
		rcpts = append(rcpts, r)
	}
	return sendReport(ctx, w.cfg.Store, w.cfg.Hostname, w.cfg.Expiry, e, raw, rcpts, now, w.Kick)
}

// reportSink is where reports go: a local sender's INBOX, or the queue.
type reportSink interface {
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error)
	Enqueue(ctx context.Context, out storage.Outbound) (storage.QueueID, error)
}

// sendReport builds the DSN and hands it to the sender: straight into the
// INBOX of a local account (submission only takes local senders), queued
// from the null reverse-path otherwise.
func sendReport(ctx context.Context, st reportSink, hostname string, expiry time.Duration, e storage.QueueEntry, raw []byte, rcpts []report.Recipient, now time.Time, kick func()) error {
	for i := range rcpts {
		if rcpts[i].Status == "" {
			rcpts[i].Status = "5.0.0"
			if rcpts[i].Action != report.ActionFailed {
				rcpts[i].Status = "2.0.0"
			}
		}
	}
	dsn, err := report.BuildDSN(report.DSN{
		ReportingMTA: hostname,
		To:           e.Sender,
		EnvID:        e.EnvID,
		Arrival:      e.Created,
		Ret:          e.Ret,
		Original:     raw,
		Recipients:   rcpts,
		Date:         now,
	})
	if err != nil {
		return fmt.Errorf("building the report for entry %d: %w", e.ID, err)
	}
	acct, err := st.AccountByAddress(ctx, e.Sender)
	switch {
	case err == nil:
		if _, err := st.Deliver(ctx, dsn, now, []storage.Recipient{{Account: acct.ID, Mailbox: "INBOX"}}); err != nil {
			return fmt.Errorf("delivering the report for entry %d: %w", e.ID, err)
		}
		return nil
	case errors.Is(err, storage.ErrNotFound):
		_, err := st.Enqueue(ctx, storage.Outbound{
			Sender:     "", // RFC 3461 6.2: a DSN goes from the null reverse-path
			Raw:        dsn,
			Recipients: []storage.OutboundRecipient{{Address: e.Sender, Notify: []string{storage.NotifyNever}}},
			Expires:    now.Add(expiry),
		})
		if err != nil {
			return fmt.Errorf("queueing the report for entry %d: %w", e.ID, err)
		}
		if kick != nil {
			kick()
		}
		return nil
	default:
		return fmt.Errorf("looking up the sender of entry %d: %w", e.ID, err)
	}
}

// Drop removes a queue entry for the administrator (relais queue drop):
// its pending recipients are marked failed with reason, and with notify
// the sender gets a DSN for them (unless NOTIFY says otherwise).
// hostname is the Reporting-MTA.
func Drop(ctx context.Context, st Store, hostname string, id storage.QueueID, reason string, notify bool) error {
	e, err := st.QueueEntry(ctx, id)
	if err != nil {
		return fmt.Errorf("queue entry %d: %w", id, err)
	}
	now := time.Now()
	if reason == "" {
		reason = "removed from the queue by the administrator"
	}
	var rcpts []report.Recipient
	for _, r := range e.Recipients {
		if r.State != storage.QueuePending {
			continue
		}
		detail := reason
		if r.LastError != "" {
			detail += "; last error: " + r.LastError
		}
		if e.Account != 0 && e.MessageID != "" {
			err := st.SetDeliveryStatus(ctx, e.Account, storage.DeliveryStatus{
				MessageID: e.MessageID, Recipient: r.Address, State: storage.StatusFailed, Detail: detail, Updated: now,
			})
			if err != nil {
				return fmt.Errorf("queue entry %d: recording the status: %w", id, err)
			}
		}
		if wants(r.Notify, storage.NotifyFailure) {
			rcpts = append(rcpts, report.Recipient{
				OriginalRecipient: r.ORCPT,
				FinalRecipient:    r.Address,
				Action:            report.ActionFailed,
				Status:            "5.0.0", // RFC 3463 3.1: other or undefined
				Diagnostic:        strings.TrimSpace(detail),
				LastAttempt:       r.LastAttempt,
			})
		}
	}
	if notify && len(rcpts) > 0 && e.Sender != "" {
		raw, err := st.QueueMessage(ctx, id)
		if err != nil {
			return fmt.Errorf("queue entry %d: %w", id, err)
		}
		if err := sendReport(ctx, st, hostname, DefaultExpiry, e, raw, rcpts, now, nil); err != nil {
			return err
		}
	}
	if err := st.DropQueue(ctx, id); err != nil {
		return fmt.Errorf("queue entry %d: %w", id, err)
	}
	return nil
}
