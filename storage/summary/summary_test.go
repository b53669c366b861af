package summary

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// nested is multipart/mixed holding multipart/alternative, a forwarded
// message/rfc822 (itself multipart) and an attachment with disposition
// parameters; the subject is RFC 2047 encoded non-ASCII.
const nested = "From: =?UTF-8?Q?Dr_=C3=89lodie_Test?= <elodie@example.net>\r\n" +
	"To: Alice <alice@example.org>, bob@example.org\r\n" +
	"Cc: carol@example.org\r\n" +
	"Reply-To: secretariat@example.net\r\n" +
	"Subject: =?UTF-8?B?Q29tcHRlLXJlbmR1IGTigJlob3NwaXRhbGlzYXRpb24gw6kgw6A=?=\r\n" +
	"Date: Mon, 23 Nov 2026 08:00:00 +0100\r\n" +
	"Message-ID: <abc@example.net>\r\n" +
	"In-Reply-To: <prev@example.net>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"Content-Language: fr\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"alt\"\r\n" +
	"\r\n" +
	"--alt\r\n" +
	"Content-Type: text/plain; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Caf=E9 cr=E8me\r\nligne 2\r\n" +
	"--alt\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>Café crème</p>\r\n" +
	"--alt--\r\n" +
	"--outer\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"Content-Description: forwarded\r\n" +
	"\r\n" +
	"From: someone@example.com\r\n" +
	"Subject: =?ISO-8859-1?Q?R=E9sultats?=\r\n" +
	"Content-Type: multipart/mixed; boundary=\"in\"\r\n" +
	"\r\n" +
	"--in\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"inner text\r\n" +
	"--in\r\n" +
	"Content-Type: application/xml; name=\"cda.xml\"\r\n" +
	"Content-ID: <cda@example.com>\r\n" +
	"\r\n" +
	"<ClinicalDocument/>\r\n" +
	"--in--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"cr.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"compte-rendu.pdf\"; size=12\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Location: http://example.net/cr.pdf\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--outer--\r\n"

func TestParseNested(t *testing.T) {
	m, err := Parse([]byte(nested))
	require.NoError(t, err)
	assert.Equal(t, "Compte-rendu d’hospitalisation é à", m.Envelope.Subject)
	require.Len(t, m.Envelope.From, 1)
	assert.Equal(t, imap.Address{Name: "Dr Élodie Test", Mailbox: "elodie", Host: "example.net"}, m.Envelope.From[0])
	assert.Len(t, m.Envelope.To, 2)
	assert.Equal(t, []string{"prev@example.net"}, m.Envelope.InReplyTo)

	mp, ok := m.Body.(*imap.BodyStructureMultiPart)
	require.True(t, ok)
	assert.Equal(t, "mixed", mp.Subtype)
	require.Len(t, mp.Children, 3)
	assert.Equal(t, "multipart/alternative", mp.Children[0].MediaType())
	fw := mp.Children[1].(*imap.BodyStructureSinglePart)
	require.NotNil(t, fw.MessageRFC822)
	assert.Equal(t, "Résultats", fw.MessageRFC822.Envelope.Subject)
	assert.Equal(t, "multipart/mixed", fw.MessageRFC822.BodyStructure.MediaType())
	att := mp.Children[2].(*imap.BodyStructureSinglePart)
	require.NotNil(t, att.Disposition())
	assert.Equal(t, "attachment", att.Disposition().Value)
	assert.Equal(t, "compte-rendu.pdf", att.Disposition().Params["filename"])
}

func TestRoundTrip(t *testing.T) {
	for name, raw := range map[string]string{
		"nested": nested,
		"plain":  "Subject: hi\r\n\r\nhello\r\n",
		"empty":  "\r\n",
		"nodate": "From: a@example.org\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\nx",
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(raw))
			require.NoError(t, err)
			enc, err := Encode(m)
			require.NoError(t, err)
			got, err := Decode(enc)
			require.NoError(t, err)
			enc2, err := Encode(got)
			require.NoError(t, err)
			assert.Equal(t, string(enc), string(enc2), "stable encoding")
			// Times compare by instant; the rest must be identical.
			assert.True(t, m.Envelope.Date.Equal(got.Envelope.Date))
			m.Envelope.Date, got.Envelope.Date = m.Envelope.Date.UTC(), got.Envelope.Date.UTC()
			normDates(m.Body)
			normDates(got.Body)
			assert.Equal(t, m, got)
		})
	}
}

func normDates(bs imap.BodyStructure) {
	if bs == nil {
		return
	}
	bs.Walk(func(_ []int, p imap.BodyStructure) bool {
		if sp, ok := p.(*imap.BodyStructureSinglePart); ok && sp.MessageRFC822 != nil {
			if env := sp.MessageRFC822.Envelope; env != nil {
				env.Date = env.Date.UTC()
			}
			normDates(sp.MessageRFC822.BodyStructure)
		}
		return true
	})
}

func TestDecodeCorrupt(t *testing.T) {
	for _, b := range []string{"", "{", `{"v":2}`, `{"v":1,"body":{"k":"?"}}`, `{"v":1,"body":{"k":"m","parts":[null]}}`} {
		_, err := Decode([]byte(b))
		assert.ErrorIs(t, err, ErrCorrupt, b)
	}
}

func TestParseGarbage(t *testing.T) {
	for _, raw := range []string{"", "\x00\xff", "no colon header\r\n\r\nbody", "Content-Type: multipart/mixed\r\n\r\n--\r\n"} {
		m, err := Parse([]byte(raw))
		if err != nil {
			m = Minimal([]byte(raw))
		}
		_, err = Encode(m)
		assert.NoError(t, err)
	}
	// Deep nesting degrades to a minimal summary instead of recursing.
	var b strings.Builder
	for i := 0; i < MaxNesting+5; i++ {
		b.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strings.Repeat("x", i) + "\"\r\n\r\n--b" + strings.Repeat("x", i) + "\r\n")
	}
	m, err := Parse([]byte(b.String()))
	require.NoError(t, err)
	assert.Equal(t, "application/octet-stream", m.Body.MediaType())
	deep := strings.ReplaceAll(b.String(), "Content-Type:", "CONTENT-TYPE \t:")
	m, err = Parse([]byte(deep))
	require.NoError(t, err)
	assert.Equal(t, "application/octet-stream", m.Body.MediaType())
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Élodie":           "elodie",
		"elodie":           "elodie",
		"ÉLODIE":           "elodie",
		"Crème Brûlée":     "creme brulee",
		"Ça Œuvre":         "ca œuvre",
		"E\u0301lodie":     "elodie",
		"ASCII only 123":   "ascii only 123",
		"bad \xff utf8":    "bad \ufffd utf8",
		"hôpital, Noël, ñ": "hopital, noel, n",
	} {
		assert.Equal(t, want, Fold(in), in)
	}
	assert.Equal(t, Fold("Élodie"), Fold("elodie"))
}

func TestSearchText(t *testing.T) {
	header, body := SearchText([]byte(nested))
	assert.Contains(t, header, "subject: compte-rendu d’hospitalisation e a")
	assert.Contains(t, header, "dr elodie test")
	assert.Contains(t, body, "cafe creme")
	assert.Contains(t, body, "<p>cafe creme</p>")
	assert.NotContains(t, body, "jvberi0xljqk")

	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("abcdefgh\r\n"), (2*MaxBodyText)/10)...)
	_, body = SearchText(big)
	assert.LessOrEqual(t, len(body), MaxBodyText)
	assert.Greater(t, len(body), MaxBodyText/2)
}

func BenchmarkDecode(b *testing.B) {
	m, err := Parse([]byte(nested))
	require.NoError(b, err)
	enc, err := Encode(m)
	require.NoError(b, err)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(nested))
	f.Add([]byte("Subject: hi\r\n\r\nhello\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n--x--\r\n"))
	f.Add([]byte("Subject: =?utf-8?q?=ff?=\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			m = Minimal(raw)
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("decode: %v", err)
		}
		SearchText(raw)
	})
}

// BenchmarkParse is what a delivery costs before storage: summary and
// search text of a 10 KiB text message.
func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("From: Dr Test <test@example.net>\r\nTo: alice@example.org\r\nSubject: =?UTF-8?Q?Compte-rendu_=C3=A9?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for sb.Len() < 10<<10 {
		sb.WriteString("Le patient est sorti ce jour, traitement inchangé, revoir dans 15 jours.\r\n")
	}
	raw := []byte(sb.String())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
		SearchText(raw)
	}
}

// TestFoldReference checks Fold against the plain x/text pipeline it
// optimises: lower-case, NFD, drop combining marks (Mn).
func TestFoldReference(t *testing.T) {
	ref := func(s string) string {
		out, _, err := transform.String(transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn))), strings.ToLower(strings.ToValidUTF8(s, "\uFFFD")))
		require.NoError(t, err)
		return out
	}
	for _, s := range []string{
		"Élodie", "ÉLODIE Crème Brûlée", "Ǆemal Ⅻ ﬁn", "Ελληνικά Άλφα", "Ёжик", "한국어", "İstanbul", "Ångström ø æ œ ß",
		"Noël: l'hôpital, la Sécurité sociale", "e\u0301\u0327", "日本語のテキスト", "emoji 😀 ok",
	} {
		assert.Equal(t, ref(s), Fold(s), s)
	}
}
