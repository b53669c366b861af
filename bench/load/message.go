package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"
)

// words make message bodies that look like text (SEARCH and FETCH work on
// realistic lines, not on one repeated byte).
var words = []string{
	"patient", "consultation", "ordonnance", "compte", "rendu", "sortie",
	"hospitalisation", "traitement", "suivi", "infirmier", "médecin",
	"examen", "résultat", "biologie", "radiologie", "rendez-vous", "courrier",
	"adressé", "pour", "avis", "merci", "confrère", "cordialement", "bilan",
}

// subjectTokens is how many distinct tokens subjects carry: a SEARCH for
// one matches about 1/subjectTokens of a mailbox.
const subjectTokens = 100

// message returns message number i, from sender to rcpt, of size bytes
// (RFC 5322: CRLF line endings, lines under 78 characters).
func message(i int, from, rcpt string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 128)
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\n", from, rcpt)
	fmt.Fprintf(&b, "Subject: bench message %d token%03d\r\n", i, i%subjectTokens)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <bench.%d.%d@load.invalid>\r\n", time.Now().UnixNano(), i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	r := rand.New(rand.NewPCG(uint64(i), 7))
	line := 0
	for b.Len() < size-2 {
		w := words[r.IntN(len(words))]
		if line+len(w)+1 > 72 {
			b.WriteString("\r\n")
			line = 0
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
