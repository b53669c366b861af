// Package summary builds and serialises the parsed summary that Relais stores
// beside each message, so that IMAP FETCH ENVELOPE / BODYSTRUCTURE never
// reparses the raw bytes (RFC 9051 7.5.2), and the folded text used by
// SEARCH (RFC 9051 6.4.4).
//
// The envelope and body structure are computed by go-imap's own
// imapserver.ExtractEnvelope and imapserver.ExtractBodyStructure, so the
// stored values are exactly what the IMAP server would compute on the fly.
package summary

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// Bounds on untrusted input.
const (
	// MaxNesting is the number of multipart or message/rfc822 levels the
	// parser will descend into; beyond it the message gets a minimal
	// summary (its envelope and a single opaque part).
	MaxNesting = 100
)

// Message is the parsed summary of one RFC 5322 message.
type Message struct {
	Envelope *imap.Envelope
	Body     imap.BodyStructure
}

// Parse computes the summary of raw. It never panics: a panic inside the MIME
// parser is recovered and reported as an error; a message too deeply nested
// gets a minimal summary.
func Parse(raw []byte) (msg *Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("summary: parse: panic: %v", r)
		}
	}()
	header, bodyOffset, err := readHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("summary: parse: %w", err)
	}
	msg = &Message{Envelope: imapserver.ExtractEnvelope(header)}
	if nestingEstimate(raw) > MaxNesting {
		msg.Body = minimalBody(header, raw[bodyOffset:])
		return msg, nil
	}
	msg.Body = imapserver.ExtractBodyStructure(bytes.NewReader(raw))
	return msg, nil
}

// readHeader parses the header of raw and returns where the body starts.
func readHeader(raw []byte) (textproto.Header, int, error) {
	r := bytes.NewReader(raw)
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return textproto.Header{}, 0, err
	}
	off := len(raw) - r.Len() - br.Buffered()
	return h, off, nil
}

// nestingEstimate is an upper bound on how deeply the MIME tree of raw can
// nest: every level needs a Content-Type line naming a multipart or message
// type. It scans line starts only, without copying raw.
func nestingEstimate(raw []byte) int {
	n := 0
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		const ct = "content-type"
		if len(line) < len(ct) || !bytes.EqualFold(line[:len(ct)], []byte(ct)) {
			continue
		}
		// go-message accepts blanks before the colon.
		v := bytes.TrimLeft(line[len(ct):], " \t")
		if len(v) == 0 || v[0] != ':' {
			continue
		}
		// The value may fold onto following lines (RFC 5322 2.2.3).
		for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') {
			next := raw
			if i := bytes.IndexByte(raw, '\n'); i >= 0 {
				next, raw = raw[:i], raw[i+1:]
			} else {
				raw = nil
			}
			v = append(append([]byte{}, v...), next...)
		}
		if containsFold(v, "multipart/") || containsFold(v, "message/") {
			n++
		}
	}
	return n
}

// containsFold reports whether s contains the lower-case ASCII sub,
// ignoring ASCII case.
func containsFold(s []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(sub)], []byte(sub)) {
			return true
		}
	}
	return false
}

// minimalBody describes a message as one part of its declared type
// (multipart types degrade to application/octet-stream).
func minimalBody(h textproto.Header, body []byte) imap.BodyStructure {
	return &imap.BodyStructureSinglePart{
		Type:     "application",
		Subtype:  "octet-stream",
		Params:   map[string]string{},
		Encoding: h.Get("Content-Transfer-Encoding"),
		Size:     uint32(len(body)),
	}
}

// ErrCorrupt reports an encoded summary that cannot be decoded.
var ErrCorrupt = errors.New("summary: corrupt encoding")

// Minimal is the summary of a message Parse cannot read: its envelope if the
// header parses, and one opaque part of the whole size.
func Minimal(raw []byte) *Message {
	m := &Message{Envelope: &imap.Envelope{}}
	h, off, err := readHeader(raw)
	if err != nil {
		h, off = textproto.Header{}, 0
	} else {
		func() {
			defer func() { _ = recover() }()
			m.Envelope = imapserver.ExtractEnvelope(h)
		}()
	}
	m.Body = minimalBody(h, raw[off:])
	return m
}
