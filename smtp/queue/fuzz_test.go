package queue

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzRemoteReply feeds arbitrary text as what another operator's server
// answers: its EHLO response (RFC 5321 4.1.1.1, where STARTTLS must be
// found, RFC 3207 4) and a reply whose code goes to the logs. The
// invariants: replyCode is 0 or the reply's own leading three digits, in
// 200..599; hasExtension never takes the greeting line for an extension,
// and finds one (case-insensitively, RFC 5321 2.4) on any later line.
func FuzzRemoteReply(f *testing.F) {
	for _, s := range []struct{ ehlo, reply string }{
		{"mx.remote.test Hello\nPIPELINING\nSIZE 10240000\nSTARTTLS\n8BITMIME\nDSN", "250 2.0.0 Ok: queued as 1234"},
		{"STARTTLS greeting only", "550 5.1.1 <x@remote.test>: Recipient address rejected"},
		{"mx\nstarttls\nAUTH PLAIN LOGIN", "421 4.3.2 Service shutting down"},
		{"", "dial tcp 192.0.2.1:25: i/o timeout"},
		{"mx\n\n \nSTARTTLS\r", "6xx"},
	} {
		f.Add(s.ehlo, s.reply)
	}
	f.Fuzz(func(t *testing.T, ehlo, reply string) {
		if n := replyCode(reply); n != 0 {
			want, err := strconv.Atoi(reply[:3])
			if err != nil || n != want || n < 200 || n > 599 {
				t.Fatalf("replyCode(%q) = %d", reply, n)
			}
		}
		lines := strings.Split(ehlo, "\n")
		if hasExtension(lines[0], "STARTTLS") {
			t.Fatalf("the greeting line %q taken for an extension", lines[0])
		}
		if !hasExtension(ehlo+"\nstarttls", "STARTTLS") {
			t.Fatalf("STARTTLS on the last line of %q not found", ehlo+"\nstarttls")
		}
	})
}
