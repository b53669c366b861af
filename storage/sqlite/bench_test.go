package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/summary"
)

// benchMessage is a synthetic message of about size bytes.
func benchMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("From: Dr Test <test@example.net>\r\nTo: alice@example.org\r\nSubject: =?UTF-8?Q?Compte-rendu_=C3=A9?=\r\n" +
		"Date: Mon, 23 Nov 2026 08:00:00 +0100\r\nMessage-ID: <bench@example.net>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < size {
		b.WriteString("Le patient est sorti ce jour, traitement inchangé, revoir dans 15 jours.\r\n")
	}
	return []byte(b.String())
}

func benchStore(b *testing.B) (*Store, storage.Account) {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if _, err := s.AddDomain(ctx, "example.org"); err != nil {
		b.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, "alice@example.org", "Alice", "h")
	if err != nil {
		b.Fatal(err)
	}
	return s, a
}

// BenchmarkDeliver is SMTP DATA for one local recipient plus the sender's
// Sent copy: one durable transaction per message.
func BenchmarkDeliver(b *testing.B) {
	s, a := benchStore(b)
	raw := benchMessage(10 << 10)
	rcpts := []storage.Recipient{{Account: a.ID, Mailbox: "INBOX"}, {Account: a.ID, Mailbox: "Sent", Flags: []string{storage.FlagSeen}}}
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	start := time.Now()
	for b.Loop() {
		if _, err := s.Deliver(ctx, raw, time.Time{}, rcpts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkDeliverParallel(b *testing.B) {
	s, a := benchStore(b)
	raw := benchMessage(10 << 10)
	rcpts := []storage.Recipient{{Account: a.ID, Mailbox: "INBOX"}, {Account: a.ID, Mailbox: "Sent", Flags: []string{storage.FlagSeen}}}
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Deliver(ctx, raw, time.Time{}, rcpts); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// fill stores n messages in INBOX in batches (one transaction per batch).
func fill(b *testing.B, s *Store, a storage.Account, n int) storage.MailboxID {
	b.Helper()
	ctx := context.Background()
	const batch = 500
	rcpts := make([]storage.Recipient, batch)
	for i := range rcpts {
		rcpts[i] = storage.Recipient{Account: a.ID, Mailbox: "INBOX"}
	}
	var mbox storage.MailboxID
	for done := 0; done < n; done += batch {
		raw := benchMessage(4 << 10)
		ds, err := s.Deliver(ctx, raw, time.Time{}, rcpts[:min(batch, n-done)])
		if err != nil {
			b.Fatal(err)
		}
		mbox = ds[0].Mailbox
	}
	return mbox
}

// BenchmarkMessages lists 10,000 message summaries (what SELECT then FETCH
// 1:* (FLAGS ENVELOPE) reads).
func BenchmarkMessages(b *testing.B) {
	s, a := benchStore(b)
	mbox := fill(b, s, a, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		ms, err := s.Messages(ctx, a.ID, mbox)
		if err != nil || len(ms) != 10000 {
			b.Fatal(err, len(ms))
		}
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFetchSummaries lists 10,000 messages and decodes every summary.
func BenchmarkFetchSummaries(b *testing.B) {
	s, a := benchStore(b)
	mbox := fill(b, s, a, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		ms, err := s.Messages(ctx, a.ID, mbox)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range ms {
			if _, err := summary.Decode(m.Summary); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
