package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
)

// submitted stores a message the sender sent to rcpt and rcpt2 (status
// queued for both), as submission does.
func (e *env) submitted() {
	e.t.Helper()
	out := e.outbound(storage.OutboundRecipient{Address: rcpt}, storage.OutboundRecipient{Address: rcpt2})
	out.Raw = message("x")
	out.Expires = time.Now().Add(time.Hour)
	_, _, err := e.store.Submit(context.Background(), storage.Submission{
		Account: e.acct.ID, MessageID: messageID, Outbound: &out,
	})
	require.NoError(e.t, err)
	require.Equal(e.t, storage.StatusQueued, e.status(rcpt).State)
}

const thunderbirdMDN = "Message-ID: <mdn-1@remote.test>\r\n" +
	"From: Infirmiere <" + rcpt + ">\r\n" +
	"To: <" + sender + ">\r\n" +
	"Subject: Return Receipt (displayed) - Compte rendu\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/report; report-type=disposition-notification;\r\n boundary=\"----------MDN\"\r\n\r\n" +
	"------------MDN\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nThis is a Return Receipt.\r\n\r\n" +
	"------------MDN\r\nContent-Type: message/disposition-notification; name=\"MDNPart2.txt\"\r\nContent-Disposition: inline\r\n\r\n" +
	"Reporting-UA: remote.test; Mozilla Thunderbird\r\n" +
	"Final-Recipient: rfc822;" + rcpt + "\r\n" +
	"Original-Message-ID: <" + messageID + ">\r\n" +
	"Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n" +
	"------------MDN--\r\n"

func TestIncomingReportsUpdateStatus(t *testing.T) {
	e := newEnv(t, freeAddr(t))
	e.submitted()
	reps := &queue.Reports{Hostname: hostname, Store: e.store}

	// A remote operator's DSN: rcpt2 failed.
	dsn, err := report.BuildDSN(report.DSN{
		ReportingMTA: "mx.remote.test", To: sender, Original: message("x"),
		Recipients: []report.Recipient{{FinalRecipient: rcpt2, Action: report.ActionFailed, Status: "5.2.2", Diagnostic: "552 5.2.2 mailbox full"}},
	})
	require.NoError(t, err)
	reps.Incoming(context.Background(), dsn, []storage.AccountID{e.acct.ID})
	st := e.status(rcpt2)
	assert.Equal(t, storage.StatusFailed, st.State)
	assert.Equal(t, "552 5.2.2 mailbox full", st.Detail)

	// Thunderbird's MDN: rcpt read it.
	reps.Incoming(context.Background(), []byte(thunderbirdMDN), []storage.AccountID{e.acct.ID})
	st = e.status(rcpt)
	assert.Equal(t, storage.StatusRead, st.State)
	assert.Equal(t, "manual-action/MDN-sent-manually; displayed", st.Detail)

	// A report about a recipient the sender never wrote to changes nothing.
	stranger, err := report.BuildDSN(report.DSN{
		ReportingMTA: "mx.remote.test", To: sender, Original: message("x"),
		Recipients: []report.Recipient{{FinalRecipient: "stranger@remote.test", Action: report.ActionDelivered, Status: "2.0.0"}},
	})
	require.NoError(t, err)
	reps.Incoming(context.Background(), stranger, []storage.AccountID{e.acct.ID})
	sts, err := e.store.DeliveryStatuses(context.Background(), e.acct.ID, messageID)
	require.NoError(t, err)
	assert.Len(t, sts, 2)

	// Ordinary mail is ignored.
	reps.Incoming(context.Background(), message("hello"), []storage.AccountID{e.acct.ID})
}

func TestDeliveredSendsSuccessDSN(t *testing.T) {
	e := newEnv(t, freeAddr(t))
	reps := &queue.Reports{Hostname: hostname, Store: e.store}
	// To a local sender: straight into the INBOX.
	err := reps.Delivered(context.Background(), smtpd.DeliveredReport{
		Sender: sender, Recipients: []storage.OutboundRecipient{{Address: "x@demo.test", Notify: []string{storage.NotifySuccess}}},
		Message: message("x"), Arrival: time.Now(),
	})
	require.NoError(t, err)
	rep := e.dsn()
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, report.ActionDelivered, rep.Recipients[0].Action)
	assert.Equal(t, "2.0.0", rep.Recipients[0].Status)

	// To a remote sender: queued from the null reverse-path.
	err = reps.Delivered(context.Background(), smtpd.DeliveredReport{
		Sender: "someone@remote.test", Recipients: []storage.OutboundRecipient{{Address: "x@demo.test"}},
		Message: message("x"), Arrival: time.Now(),
	})
	require.NoError(t, err)
	var entries []storage.QueueEntry
	require.NoError(t, e.store.QueueEntries(context.Background(), func(q storage.QueueEntry) error { entries = append(entries, q); return nil }))
	require.Len(t, entries, 1)
	assert.Equal(t, "", entries[0].Sender)
	assert.Equal(t, "someone@remote.test", entries[0].Recipients[0].Address)
	assert.Equal(t, []string{storage.NotifyNever}, entries[0].Recipients[0].Notify)
}
