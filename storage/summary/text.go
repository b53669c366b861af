package summary

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 charsets in SearchText
	"github.com/emersion/go-message/textproto"
	"golang.org/x/text/unicode/norm"
)

// Bounds of the search text kept per message.
const (
	MaxHeaderText = 256 << 10 // decoded header fields
	MaxBodyText   = 1 << 20   // decoded text of text/* parts
)

// Fold maps s to the form SEARCH compares: lower-case, canonically
// decomposed (NFD) with combining marks removed, so that "Élodie",
// "E\u0301LODIE" and "elodie" fold equal. RFC 9051 6.4.4 leaves the
// comparison to the server ("case-insensitive substring"); we also ignore
// diacritics, as French users expect. Invalid UTF-8 becomes U+FFFD. Apply
// it to both the text and the search key.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	var buf [utf8.UTFMax]byte
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		r = unicode.ToLower(r)
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		if r >= 0xAC00 && r <= 0xD7A3 {
			// Hangul syllables decompose algorithmically (Unicode 3.12),
			// outside the table Properties reads.
			b.WriteString(norm.NFD.String(string(buf[:n])))
			continue
		}
		d := norm.NFD.Properties(buf[:n]).Decomposition()
		if d == nil {
			b.WriteRune(r)
			continue
		}
		for _, dr := range string(d) {
			if !unicode.Is(unicode.Mn, dr) {
				b.WriteRune(unicode.ToLower(dr))
			}
		}
	}
	return b.String()
}

var wordDecoder = &mime.WordDecoder{CharsetReader: message.CharsetReader}

// SearchText returns the text SEARCH looks into: the header field values
// with RFC 2047 encoded words decoded ("Name: value" lines), and the decoded
// text of the text/* parts (transfer encodings and charsets undone, RFC 2045
// 6, RFC 2046 4.1.2), both folded by Fold and bounded by MaxHeaderText and
// MaxBodyText. It never panics and does its best on malformed input.
func SearchText(raw []byte) (header, body string) {
	defer func() {
		if r := recover(); r != nil {
			header, body = Fold(truncate(header, MaxHeaderText)), ""
		}
	}()
	h, _, err := readHeader(raw)
	if err == nil {
		header = Fold(headerText(h))
	}
	if nestingEstimate(raw) > MaxNesting {
		return header, ""
	}
	body = Fold(bodyText(raw))
	return header, body
}

func headerText(h textproto.Header) string {
	var b strings.Builder
	for f := h.Fields(); f.Next(); {
		v := f.Value()
		if dec, err := wordDecoder.DecodeHeader(v); err == nil {
			v = dec
		}
		b.WriteString(f.Key())
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
		if b.Len() >= MaxHeaderText {
			break
		}
	}
	return truncate(b.String(), MaxHeaderText)
}

func bodyText(raw []byte) string {
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return ""
	}
	_ = err // unknown charsets and the like: use what could be read
	var b bytes.Buffer
	_ = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil || part == nil || b.Len() >= MaxBodyText {
			return nil
		}
		mt, _, _ := part.Header.ContentType()
		if mt == "" {
			mt = "text/plain"
		}
		if !strings.HasPrefix(mt, "text/") {
			return nil
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		_, _ = io.Copy(&b, io.LimitReader(part.Body, int64(MaxBodyText-b.Len())))
		return nil
	})
	return truncate(b.String(), MaxBodyText)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
