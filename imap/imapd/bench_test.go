package imapd_test

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func benchEnv(b *testing.B, n int) *env {
	e := newEnv(b)
	for i := range n {
		e.deliver("INBOX", testMessage(i, fmt.Sprint("Message ", i), "Corps du message, quelques lignes de texte.\r\nSeconde ligne."))
	}
	return e
}

// BenchmarkFetch fetches envelopes and flags of 1,000 messages.
func BenchmarkFetch(b *testing.B) {
	e := benchEnv(b, 1000)
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	b.ResetTimer()
	for b.Loop() {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil || len(msgs) != 1000 {
			b.Fatalf("%d messages, %v", len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/msg")
}

// BenchmarkFetchBody fetches BODY.PEEK[] of 100 messages.
func BenchmarkFetchBody(b *testing.B) {
	e := benchEnv(b, 100)
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	b.ResetTimer()
	for b.Loop() {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs) != 100 {
			b.Fatalf("%d messages, %v", len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/msg")
}
