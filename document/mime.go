package document

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// leaf is a decoded non-multipart MIME part.
type leaf struct {
	mediaType string // lower case, e.g. "application/zip"
	filename  string // decoded, base name only; "" if none
	data      []byte // transfer-decoded body
	truncated bool   // the part exceeded MaxPart
}

// walker collects the leaves of a MIME tree within limits.
type walker struct {
	lim    Limits
	parts  int
	leaves []leaf
	notes  []string // structural troubles (too many parts, too deep...)
}

var errStop = errors.New("document: MIME limit reached")

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader accepts the charsets mail filenames and subjects use in
// practice; mime.WordDecoder handles UTF-8, US-ASCII and ISO-8859-1 itself.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "iso-8859-15", "windows-1252", "cp1252", "latin1", "latin-1":
		// Close enough to ISO-8859-1 for names (RFC 2047 4).
		b, err := io.ReadAll(io.LimitReader(input, 1<<16))
		if err != nil {
			return nil, err
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return strings.NewReader(string(r)), nil
	}
	return nil, fmt.Errorf("document: unsupported charset %q", charset)
}

// decodeHeader decodes RFC 2047 encoded words, leaving the raw text when
// decoding fails.
func decodeHeader(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// walk reads the entity with header h and body r (RFC 2045, RFC 2046).
// message/rfc822 parts are leaves: a forwarded mail's documents belong to
// that mail, and an MDN's copy of the original is not a new delivery.
func (w *walker) walk(h textproto.MIMEHeader, r io.Reader, depth int) error {
	w.parts++
	if w.parts > w.lim.MaxParts {
		w.notes = append(w.notes, "too many MIME parts")
		return errStop
	}
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mediaType == "" {
		// RFC 2045 5.2: default text/plain; keep the parameters we could read.
		mediaType = "text/plain"
		if params == nil {
			params = map[string]string{}
		}
	}
	mediaType = strings.ToLower(mediaType)
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= w.lim.MaxDepth {
			w.notes = append(w.notes, "MIME nesting too deep")
			return errStop
		}
		boundary := params["boundary"]
		if boundary == "" {
			return nil
		}
		mr := multipart.NewReader(r, boundary)
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				w.notes = append(w.notes, "malformed multipart structure")
				return nil // keep what was read so far
			}
			if err := w.walk(p.Header, p, depth+1); err != nil {
				return err
			}
		}
	}
	lf := leaf{mediaType: mediaType, filename: partFilename(h, params)}
	if classify(lf) == kindOther {
		// Not a document, nor a PDF copy, nor a message/rfc822 to descend
		// (see above): recorded without reading the body.
		w.leaves = append(w.leaves, lf)
		return nil
	}
	var dec io.Reader = r
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, &b64Filter{r: bufio.NewReader(r)})
	case "quoted-printable":
		dec = quotedprintable.NewReader(r)
	}
	data, err := io.ReadAll(io.LimitReader(dec, w.lim.MaxPart+1))
	if int64(len(data)) > w.lim.MaxPart {
		lf.truncated = true
		data = nil
	}
	if err != nil && !lf.truncated {
		// A broken encoding: keep what decoded; the consumers of the data
		// (zip, XML) report what is missing.
		w.notes = append(w.notes, "bad transfer encoding")
	}
	lf.data = data
	w.leaves = append(w.leaves, lf)
	return nil
}

// b64Filter drops the characters base64 bodies carry besides the alphabet
// (line breaks, spaces, stray padding-after-padding), RFC 2045 6.8: "Any
// characters outside of the base64 alphabet are to be ignored".
type b64Filter struct{ r *bufio.Reader }

func (f *b64Filter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := f.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
			p[n] = c
			n++
		}
	}
	return n, nil
}

// partFilename returns the part's file name: Content-Disposition filename
// (RFC 2183, with RFC 2231 continuations and charsets as mime.ParseMediaType
// decodes them), else Content-Type name; RFC 2047 words decoded (a common
// non-standard form); reduced to a base name.
func partFilename(h textproto.MIMEHeader, ctParams map[string]string) string {
	name := ""
	if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
		name = dp["filename"]
	}
	if name == "" {
		name = ctParams["name"]
	}
	if name == "" {
		return ""
	}
	name = decodeHeader(name)
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	if name == "." || name == "/" {
		return ""
	}
	return clean(name, 255)
}

// clean makes s safe to show in a header or a log: valid UTF-8, no control
// characters, at most max runes.
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// token keeps only [A-Za-z0-9.-_:] of s, at most max bytes: for codes and
// identifiers that come from a document and go into a header.
func token(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// looksLikeCDA reports whether data seems to be a CDA document: an XML
// document whose first 64 KiB mention ClinicalDocument.
func looksLikeCDA(data []byte) bool {
	head := data
	if len(head) > 64<<10 {
		head = head[:64<<10]
	}
	return bytes.Contains(head, []byte("ClinicalDocument"))
}
