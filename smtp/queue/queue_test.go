package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/storage"
)

func TestDeliveredOnce(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)

	msgs := r.received()
	require.Len(t, msgs, 1, "exactly one DATA")
	m := msgs[0]
	assert.Equal(t, sender, m.from)
	assert.Equal(t, []string{rcpt}, m.rcpts)
	assert.True(t, m.tls, "over TLS")
	assert.Equal(t, hostname, m.clientCert, "our operator certificate as the TLS client certificate")
	assert.Equal(t, string(message("Synthetic body.")), string(m.data))

	st := e.status(rcpt)
	assert.Equal(t, storage.StatusRelayed, st.State)
	assert.True(t, strings.HasPrefix(st.Detail, "250"), st.Detail)
	assert.Empty(t, e.inbox(), "no report without NOTIFY=SUCCESS")

	// More polls change nothing.
	w.Kick()
	e.clock.Advance(time.Hour)
	time.Sleep(100 * time.Millisecond)
	_, _, datas := r.counts()
	assert.Equal(t, 1, datas)
}

func TestOneConnectionPerDomainOneTransactionPerRecipient(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}, storage.OutboundRecipient{Address: rcpt2}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	msgs := r.received()
	require.Len(t, msgs, 2)
	assert.Equal(t, []string{rcpt}, msgs[0].rcpts, "each recipient alone in its transaction")
	assert.Equal(t, []string{rcpt2}, msgs[1].rcpts)
	conns, _, _ := r.counts()
	assert.Equal(t, 1, conns, "one connection for the domain")
}

// sealer encrypts "for" a recipient by tagging the body, or fails.
type sealer struct{ err error }

func (s sealer) Seal(_ context.Context, raw []byte, to string) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	return append([]byte("X-Sealed-For: "+to+"\r\n"), raw...), nil
}

func TestSealedPerRecipient(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	e := newEnv(t, r.addr)
	e.cfg.Sealer = sealer{}
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}, storage.OutboundRecipient{Address: rcpt2}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	msgs := r.received()
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		assert.True(t, strings.HasPrefix(string(m.data), "X-Sealed-For: "+m.rcpts[0]+"\r\n"), "each recipient gets its own copy")
	}
}

func TestRemoteDownThenUp(t *testing.T) {
	addr := freeAddr(t)
	e := newEnv(t, addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	entry := e.waitAttempts(id, 1)
	rc := entry.Recipients[0]
	assert.Equal(t, storage.QueuePending, rc.State)
	assert.Contains(t, rc.LastError, "connecting to")
	assert.True(t, e.clock.Now().Add(time.Minute).Equal(rc.NextAttempt), "backoff: %v", rc.NextAttempt)
	assert.Equal(t, storage.StatusDelayed, e.status(rcpt).State)

	// Not due yet: nothing happens.
	w.Kick()
	time.Sleep(50 * time.Millisecond)
	entry, err := e.store.QueueEntry(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, 1, entry.Recipients[0].Attempts)

	r := startRemote(t, remoteOptions{addr: addr})
	e.clock.Advance(2 * time.Minute)
	w.Kick()
	e.waitGone(id)
	require.Len(t, r.received(), 1, "delivered once")
	assert.Equal(t, storage.StatusRelayed, e.status(rcpt).State)
	assert.Empty(t, e.inbox())
}

func TestPermanentFailureSendsDSN(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	r.rcptReply[rcpt] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	e := newEnv(t, r.addr)
	id := e.enqueue(func() storage.Outbound {
		o := e.outbound(storage.OutboundRecipient{Address: rcpt, ORCPT: "rfc822;" + rcpt})
		o.EnvID = "ENV-42"
		return o
	}())
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)

	rep := e.dsn()
	assert.Equal(t, report.KindDSN, rep.Kind)
	assert.Equal(t, "<"+messageID+">", rep.OriginalMessageID)
	assert.Equal(t, hostname, rep.Reporter)
	assert.Equal(t, "ENV-42", rep.EnvID)
	require.Len(t, rep.Recipients, 1)
	got := rep.Recipients[0]
	assert.Equal(t, rcpt, got.FinalRecipient)
	assert.Equal(t, "rfc822;"+rcpt, got.OriginalRecipient)
	assert.Equal(t, report.ActionFailed, got.Action)
	assert.Equal(t, "5.1.1", got.Status)
	assert.Equal(t, "127.0.0.1", got.RemoteMTA, "the route's host")
	assert.Equal(t, "550 5.1.1 no such user here", got.Diagnostic)

	st := e.status(rcpt)
	assert.Equal(t, storage.StatusFailed, st.State)
	assert.Equal(t, "550 5.1.1 no such user here", st.Detail)
	assert.Empty(t, r.received())
}

func TestExpiryFailsWithDSN(t *testing.T) {
	e := newEnv(t, freeAddr(t))
	out := e.outbound(storage.OutboundRecipient{Address: rcpt})
	out.Expires = e.clock.Now().Add(10 * time.Minute)
	id := e.enqueue(out)
	w, _ := e.start()
	w.Kick()
	e.waitAttempts(id, 1)
	assert.Empty(t, e.inbox())

	e.clock.Advance(11 * time.Minute)
	w.Kick()
	e.waitGone(id)
	rep := e.dsn()
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, report.ActionFailed, rep.Recipients[0].Action)
	assert.Equal(t, "4.4.7", rep.Recipients[0].Status, "RFC 3464: delivery time expired")
	assert.Contains(t, rep.Recipients[0].Diagnostic, "delivery time expired")
	st := e.status(rcpt)
	assert.Equal(t, storage.StatusFailed, st.State)
	assert.Contains(t, st.Detail, "delivery time expired")
}

func TestBackoffStopsAtExpiry(t *testing.T) {
	e := newEnv(t, freeAddr(t))
	e.cfg.Backoff = []time.Duration{time.Hour}
	out := e.outbound(storage.OutboundRecipient{Address: rcpt})
	out.Expires = e.clock.Now().Add(10 * time.Minute)
	id := e.enqueue(out)
	w, _ := e.start()
	w.Kick()
	entry := e.waitAttempts(id, 1)
	assert.Equal(t, out.Expires.UnixNano(), entry.Recipients[0].NextAttempt.UnixNano(), "a last attempt at the give-up time")
}

func TestDelayDSNOnce(t *testing.T) {
	e := newEnv(t, freeAddr(t))
	e.cfg.DelayNotice = 30 * time.Minute
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	e.waitAttempts(id, 1)
	assert.Empty(t, e.inbox(), "no delay report before DelayNotice")

	e.clock.Advance(31 * time.Minute)
	w.Kick()
	entry := e.waitAttempts(id, 2)
	assert.True(t, entry.Recipients[0].DelayNotified)
	rep := e.dsn()
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, report.ActionDelayed, rep.Recipients[0].Action)
	assert.Equal(t, "4.4.1", rep.Recipients[0].Status)
	assert.Equal(t, storage.StatusDelayed, e.status(rcpt).State)

	e.clock.Advance(31 * time.Minute)
	w.Kick()
	e.waitAttempts(id, 3)
	assert.Len(t, e.inbox(), 1, "one delay report only")
}

func TestUntrustedRemoteCertificate(t *testing.T) {
	certs(t)
	r := startRemote(t, remoteOptions{cert: &rogueCert})
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	entry := e.waitAttempts(id, 1)
	rc := entry.Recipients[0]
	assert.Equal(t, storage.QueuePending, rc.State, "deferred: the trust list may be fixed")
	assert.Contains(t, rc.LastError, "not an operator of the trust list")
	assert.Contains(t, rc.LastError, "rogue.remote.test")
	_, mails, _ := r.counts()
	assert.Zero(t, mails, "nothing sent to an unlisted operator")
}

func TestRemoteOperatorNotServingTheDomain(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	e := newEnv(t, r.addr)
	e.cfg.Routes["other.test"] = r.addr
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: "someone@other.test"}))
	w, _ := e.start()
	w.Kick()
	entry := e.waitAttempts(id, 1)
	assert.Contains(t, entry.Recipients[0].LastError, "does not give domain other.test")
	_, mails, _ := r.counts()
	assert.Zero(t, mails)
}

func TestNoSTARTTLSNothingInClear(t *testing.T) {
	r := startRemote(t, remoteOptions{noTLS: true})
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	entry := e.waitAttempts(id, 1)
	assert.Equal(t, storage.QueuePending, entry.Recipients[0].State)
	assert.Contains(t, entry.Recipients[0].LastError, "STARTTLS")
	_, mails, _ := r.counts()
	assert.Zero(t, mails, "no MAIL in clear")
}

func TestCancelledDuringDataThenDeliveredByNextWorker(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	inData, release := make(chan struct{}), make(chan struct{})
	r.inData, r.release = inData, release
	defer close(release)
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, stop := e.start()
	w.Kick()
	select {
	case <-inData:
	case <-time.After(10 * time.Second):
		t.Fatal("the message never reached DATA")
	}
	stop() // the worker dies while the remote holds the end of DATA
	entry, err := e.store.QueueEntry(context.Background(), id)
	require.NoError(t, err, "still queued")
	assert.Equal(t, storage.QueuePending, entry.Recipients[0].State)
	assert.Empty(t, e.status(rcpt).State, "nothing recorded for the interrupted attempt")

	// A new worker, once the lease ran out, delivers it.
	e.clock.Advance(2 * time.Minute)
	w2, _ := e.start()
	w2.Kick()
	e.waitGone(id)
	require.Len(t, r.received(), 1)
	_, _, datas := r.counts()
	assert.Equal(t, 2, datas, "at least once (RFC 5321 6.1)")
	assert.Equal(t, storage.StatusRelayed, e.status(rcpt).State)
}

func TestNotifyNeverNoDSN(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	r.rcptReply[rcpt] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt, Notify: []string{storage.NotifyNever}}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	assert.Equal(t, storage.StatusFailed, e.status(rcpt).State)
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, e.inbox())
}

func TestNullSenderNoDSN(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	r.rcptReply[rcpt] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	e := newEnv(t, r.addr)
	id := e.enqueue(storage.Outbound{Sender: "", Recipients: []storage.OutboundRecipient{{Address: rcpt}}})
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, e.inbox())
	n := 0
	require.NoError(t, e.store.QueueEntries(context.Background(), func(storage.QueueEntry) error { n++; return nil }))
	assert.Zero(t, n, "no report queued either")
}

func TestSealerPermanentErrorFails(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	e := newEnv(t, r.addr)
	e.cfg.Sealer = sealer{err: fmt.Errorf("no encryption certificate for the recipient: %w", queue.ErrPermanent)}
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	rep := e.dsn()
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, report.ActionFailed, rep.Recipients[0].Action)
	assert.Contains(t, rep.Recipients[0].Diagnostic, "no encryption certificate")
	assert.Equal(t, storage.StatusFailed, e.status(rcpt).State)
	_, mails, _ := r.counts()
	assert.Zero(t, mails)
}

func TestSealerTemporaryErrorDefers(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	e := newEnv(t, r.addr)
	e.cfg.Sealer = sealer{err: errors.New("directory unavailable")}
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	w, _ := e.start()
	w.Kick()
	entry := e.waitAttempts(id, 1)
	assert.Equal(t, storage.QueuePending, entry.Recipients[0].State)
	assert.Contains(t, entry.Recipients[0].LastError, "directory unavailable")
}

func TestTemporaryReplyDefers(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	r.rcptReply[rcpt] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}, storage.OutboundRecipient{Address: rcpt2}))
	w, _ := e.start()
	w.Kick()
	waitFor(t, "the second recipient relayed", func() bool { return len(r.received()) == 1 })
	entry := e.waitAttempts(id, 1)
	require.Len(t, entry.Recipients, 2)
	assert.Equal(t, rcpt, entry.Recipients[0].Address)
	assert.Equal(t, storage.QueuePending, entry.Recipients[0].State)
	assert.Equal(t, "451 4.3.0 try later", entry.Recipients[0].LastError)
	assert.Equal(t, storage.QueueDelivered, entry.Recipients[1].State)
	assert.Equal(t, []string{rcpt2}, r.received()[0].rcpts, "RSET after the refused RCPT, then the next transaction")
}

func TestDSNParametersPassedOn(t *testing.T) {
	r := startRemote(t, remoteOptions{dsn: true})
	e := newEnv(t, r.addr)
	out := e.outbound(storage.OutboundRecipient{Address: rcpt, Notify: []string{storage.NotifySuccess, storage.NotifyFailure}, ORCPT: "rfc822;" + rcpt})
	out.Ret, out.EnvID = "HDRS", "ENV-7"
	id := e.enqueue(out)
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	msgs := r.received()
	require.Len(t, msgs, 1)
	assert.ElementsMatch(t, []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}, msgs[0].notify)
	assert.Equal(t, "RFC822;"+rcpt, msgs[0].orcpt)
	assert.Equal(t, smtp.DSNReturnHeaders, msgs[0].ret)
	assert.Equal(t, "ENV-7", msgs[0].envID)
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, e.inbox(), "the next hop offers DSN: the success report is its job")
}

func TestRelayedDSNWhenNextHopHasNoDSN(t *testing.T) {
	r := startRemote(t, remoteOptions{dsn: false})
	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt, Notify: []string{storage.NotifySuccess}}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	rep := e.dsn()
	require.Len(t, rep.Recipients, 1)
	assert.Equal(t, report.ActionRelayed, rep.Recipients[0].Action, "RFC 3461 4.1")
	assert.Equal(t, "2.0.0", rep.Recipients[0].Status)
}

func TestReportToRemoteSenderIsQueued(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	r.rcptReply[rcpt] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	e := newEnv(t, r.addr)
	// A message from a remote sender relayed by us (no local account).
	id := e.enqueue(storage.Outbound{Sender: "someone@remote.test", Recipients: []storage.OutboundRecipient{{Address: rcpt}}, Raw: message("x")})
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	// The report goes out from the null sender to someone@remote.test.
	waitFor(t, "the report relayed", func() bool { return len(r.received()) == 1 })
	got := r.received()[0]
	assert.Equal(t, "", got.from)
	assert.Equal(t, []string{"someone@remote.test"}, got.rcpts)
	rep, err := report.Parse(got.data)
	require.NoError(t, err)
	assert.Equal(t, report.ActionFailed, rep.Recipients[0].Action)
}

func TestDrop(t *testing.T) {
	e := newEnv(t, freeAddr(t))
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	require.NoError(t, queue.Drop(context.Background(), e.store, hostname, id, "cancelled by the administrator", true))
	_, err := e.store.QueueEntry(context.Background(), id)
	assert.ErrorIs(t, err, storage.ErrNotFound)
	rep := e.dsn()
	assert.Equal(t, report.ActionFailed, rep.Recipients[0].Action)
	assert.Contains(t, rep.Recipients[0].Diagnostic, "cancelled by the administrator")
	assert.Equal(t, storage.StatusFailed, e.status(rcpt).State)

	id = e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt2}))
	require.NoError(t, queue.Drop(context.Background(), e.store, hostname, id, "", false))
	assert.Len(t, e.inbox(), 1, "no report with notify false")
	assert.ErrorIs(t, queue.Drop(context.Background(), e.store, hostname, id, "", false), storage.ErrNotFound)
}

func TestNewValidates(t *testing.T) {
	_, err := queue.New(queue.Config{Routes: map[string]string{"x.test": "no-port"}})
	require.Error(t, err)
	for _, want := range []string{"Hostname", "Store", "Operators", "ClientCert", "x.test"} {
		assert.Contains(t, err.Error(), want)
	}
}
