package storagetest

import (
	"fmt"
	"strings"
)

// textMessage is a small synthetic message (no real people).
func textMessage(subject, body string) []byte {
	return []byte("From: Dr Test <test@example.net>\r\n" +
		"To: alice@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 23 Nov 2026 08:00:00 +0100\r\n" +
		"Message-ID: <" + fmt.Sprintf("%x", len(subject)*7919+len(body)) + "@example.net>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" + body + "\r\n")
}

// bigMessage is about size bytes, with odd line endings and 8-bit bytes so
// that any rewriting shows.
func bigMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("Subject: big\r\nFrom: a@example.net\r\nContent-Type: application/octet-stream\r\n\r\n")
	line := "0123456789abcdef\xe9\xff\x00 bare LF follows\n then CRLF\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	b.WriteString("no final newline")
	return []byte(b.String())
}

// mimeMessage has an RFC 2047 subject, a quoted-printable Latin-1 text
// part, a base64 UTF-8 HTML part and a PDF attachment.
const mimeMessage = "From: =?UTF-8?Q?=C3=89lodie_Test?= <elodie@example.net>\r\n" +
	"To: alice@example.org\r\n" +
	"Subject: =?UTF-8?Q?Compte-rendu_d'hospitalisation_R=C3=89SUM=C3=89?=\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Le patient a bu un caf=E9 =E0 l'h=F4pital.\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+U29ydGllIHByw6l2dWUgbWFyZGk8L3A+\r\n" + // <p>Sortie prévue mardi</p>
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"cr.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"cr.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKc2VjcmV0cGRmdGV4dAo=\r\n" +
	"--outer--\r\n"
