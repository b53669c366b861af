package smtpd_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// benchMessage is a 10 KiB message.
func benchMessage() string {
	m := message(drAddr, nurse, "bench", "")
	line := strings.Repeat("x", 78) + "\r\n"
	var b strings.Builder
	b.WriteString(m)
	for b.Len() < 10<<10 {
		b.WriteString(line)
	}
	return b.String()
}

// BenchmarkSubmission sends 10 KiB messages over one authenticated
// connection: each is two committed copies (nurse's INBOX, dr's Sent).
func BenchmarkSubmission(b *testing.B) {
	e := newEnv(b, envOptions{})
	c := e.submit(drAddr, drPass)
	msg := benchMessage()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if err := c.SendMail(drAddr, []string{nurse}, strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSubmissionParallel spreads the same load over 8 connections.
func BenchmarkSubmissionParallel(b *testing.B) {
	const conns = 8
	e := newEnv(b, envOptions{})
	clients := make(chan *smtp.Client, conns)
	for range conns {
		c, err := smtp.DialStartTLS(e.subAddr, e.client)
		require.NoError(b, err)
		require.NoError(b, c.Auth(sasl.NewPlainClient("", drAddr, drPass)))
		b.Cleanup(func() { c.Close() })
		clients <- c
	}
	msg := benchMessage()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan struct{})
	errs := make(chan error, conns)
	for range conns {
		c := <-clients
		wg.Go(func() {
			for range work {
				if err := c.SendMail(drAddr, []string{nurse}, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for b.Loop() {
		select {
		case work <- struct{}{}:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
