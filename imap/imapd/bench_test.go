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

// BenchmarkSelect selects a mailbox of 2,000 messages (issue 7: SELECT
// reads the message index, not the summaries).
func BenchmarkSelect(b *testing.B) {
	e := benchEnv(b, 2000)
	c := e.dial(nil)
	b.ResetTimer()
	for b.Loop() {
		if d := e.selectBox(c, "INBOX"); d.NumMessages != 2000 {
			b.Fatalf("%d messages", d.NumMessages)
		}
	}
}

// BenchmarkSearchSubject runs UID SEARCH SUBJECT over 2,000 messages (11
// match): every message needs its summary.
func BenchmarkSearchSubject(b *testing.B) {
	e := benchEnv(b, 2000)
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "Message 199"}}}
	b.ResetTimer()
	for b.Loop() {
		d, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil || len(d.AllUIDs()) == 0 {
			b.Fatalf("%v, %v", d, err)
		}
	}
}

// BenchmarkSearchUnseen runs UID SEARCH UNSEEN over 2,000 messages: flags
// only, no summary read.
func BenchmarkSearchUnseen(b *testing.B) {
	e := benchEnv(b, 2000)
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	criteria := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
	b.ResetTimer()
	for b.Loop() {
		d, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil || len(d.AllUIDs()) != 2000 {
			b.Fatalf("%v, %v", d, err)
		}
	}
}
