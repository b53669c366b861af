package queue_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/report"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// node is one Relais operator: a store, its inbound listener (port 25
// role, smtpd) and its relay worker, each trusting the other node.
type node struct {
	domain string
	store  *sqlite.Store
	ln     net.Listener // inbound listener
	addr   string
	worker *queue.Worker
	cert   tls.Certificate
}

func newNode(t *testing.T, domain string, cert tls.Certificate, accounts ...string) *node {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, err = st.AddDomain(ctx, domain)
	require.NoError(t, err)
	for _, a := range accounts {
		_, err := st.CreateAccount(ctx, a, a, "x")
		require.NoError(t, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return &node{domain: domain, store: st, ln: ln, addr: ln.Addr().String(), cert: cert}
}

// link makes each node trust the other and starts listeners and workers.
func link(t *testing.T, a, b *node) {
	t.Helper()
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		self, other := pair[0], pair[1]
		dn, err := directory.SubjectDN(other.cert.Leaf)
		require.NoError(t, err)
		key, err := directory.CanonicalSubject(other.cert.Leaf)
		require.NoError(t, err)
		require.NoError(t, self.store.ApplyDirectory(context.Background(), storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: []storage.TrustEntry{{
			Domain: other.domain, Description: "synthetic operator", OperatorDN: dn, OperatorKey: key,
		}}}))
		cert := self.cert
		w, err := queue.New(queue.Config{
			Hostname:   "mx." + self.domain,
			Store:      self.store,
			Routes:     map[string]string{other.domain: other.addr},
			ClientCert: func() (*tls.Certificate, error) { return &cert, nil },
			RootCAs:    testCA.Pool(),
			Operators:  directory.NewTrust(self.store),
			Poll:       20 * time.Millisecond,
			Logger:     testLogger(),
		})
		require.NoError(t, err)
		self.worker = w
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	for _, n := range []*node{a, b} {
		inTLS := pki.ServerTLSConfig(n.cert)
		inTLS.ClientAuth = tls.VerifyClientCertIfGiven
		inTLS.ClientCAs = testCA.Pool()
		srv := smtpd.NewInbound(smtpd.Config{
			Hostname:  "mx." + n.domain,
			TLS:       inTLS,
			Logger:    testLogger(),
			Operators: directory.NewTrust(n.store),
			Reports:   &queue.Reports{Hostname: "mx." + n.domain, Store: n.store, Relay: n.worker, Logger: testLogger()},
		}, n.store)
		go srv.Serve(n.ln)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
	}
}

func inboxOf(t *testing.T, st *sqlite.Store, addr string) [][]byte {
	t.Helper()
	ctx := context.Background()
	acct, err := st.AccountByAddress(ctx, addr)
	require.NoError(t, err)
	mb, err := st.MailboxByName(ctx, acct.ID, "INBOX")
	require.NoError(t, err)
	infos, err := st.Messages(ctx, acct.ID, mb.ID)
	require.NoError(t, err)
	var out [][]byte
	for _, m := range infos {
		raw, err := st.RawMessage(ctx, acct.ID, mb.ID, m.UID)
		require.NoError(t, err)
		out = append(out, raw)
	}
	return out
}

func statusOf(t *testing.T, st *sqlite.Store, from, msgID, to string) storage.DeliveryStatus {
	t.Helper()
	acct, err := st.AccountByAddress(context.Background(), from)
	require.NoError(t, err)
	sts, err := st.DeliveryStatuses(context.Background(), acct.ID, msgID)
	require.NoError(t, err)
	for _, s := range sts {
		if s.Recipient == to {
			return s
		}
	}
	return storage.DeliveryStatus{}
}

// TestTwoOperators relays between two Relais nodes, each the other's
// trusted operator, over their real inbound listeners: the message arrives,
// NOTIFY=SUCCESS brings back a "delivered" DSN that moves the sender's
// status to delivered, an MDN moves it to read, and an unknown recipient
// comes back as a failure DSN.
func TestTwoOperators(t *testing.T) {
	certs(t)
	a := newNode(t, localDomain, ourCert, sender)
	b := newNode(t, remoteDomain, remoteCert, rcpt)
	link(t, a, b)
	ctx := context.Background()
	acct, err := a.store.AccountByAddress(ctx, sender)
	require.NoError(t, err)

	out := storage.Outbound{
		Account: acct.ID, Sender: sender, MessageID: messageID, Raw: message("Synthetic report."),
		Recipients: []storage.OutboundRecipient{
			{Address: rcpt, Notify: []string{storage.NotifySuccess, storage.NotifyFailure}},
			{Address: "nobody@remote.test"},
		},
		Expires: time.Now().Add(time.Hour),
	}
	_, _, err = a.store.Submit(ctx, storage.Submission{Account: acct.ID, MessageID: messageID, Outbound: &out})
	require.NoError(t, err)
	a.worker.Kick()

	waitFor(t, "the message at the remote operator", func() bool { return len(inboxOf(t, b.store, rcpt)) == 1 })
	assert.Contains(t, string(inboxOf(t, b.store, rcpt)[0]), "Synthetic report.")

	// The success DSN travels back from B to A and updates the status;
	// the unknown recipient fails with its own DSN.
	waitFor(t, "delivered status", func() bool {
		return statusOf(t, a.store, sender, messageID, rcpt).State == storage.StatusDelivered
	})
	waitFor(t, "failed status", func() bool {
		return statusOf(t, a.store, sender, messageID, "nobody@remote.test").State == storage.StatusFailed
	})
	waitFor(t, "two reports", func() bool { return len(inboxOf(t, a.store, sender)) == 2 })
	actions := map[report.Action]report.Recipient{}
	for _, raw := range inboxOf(t, a.store, sender) {
		rep, err := report.Parse(raw)
		require.NoError(t, err)
		require.Len(t, rep.Recipients, 1)
		actions[rep.Recipients[0].Action] = rep.Recipients[0]
	}
	assert.Equal(t, rcpt, actions[report.ActionDelivered].FinalRecipient, "from the remote operator")
	assert.Equal(t, "nobody@remote.test", actions[report.ActionFailed].FinalRecipient)
	assert.Contains(t, actions[report.ActionFailed].Diagnostic, "550")

	// The recipient's client sends an MDN (RFC 8098) through B.
	bAcct, err := b.store.AccountByAddress(ctx, rcpt)
	require.NoError(t, err)
	_, err = b.store.Enqueue(ctx, storage.Outbound{
		Account: bAcct.ID, Sender: rcpt, MessageID: "mdn-1@remote.test", Raw: []byte(thunderbirdMDN),
		Recipients: []storage.OutboundRecipient{{Address: sender}}, Expires: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)
	b.worker.Kick()
	waitFor(t, "read status", func() bool {
		return statusOf(t, a.store, sender, messageID, rcpt).State == storage.StatusRead
	})
}
