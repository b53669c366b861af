package imapd

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/summary"
)

// Search answers SEARCH (RFC 9051 6.4.4), ESEARCH (RFC 4731) and SEARCHRES
// (RFC 5182). Criteria are evaluated in Go over MessageInfo and the summary;
// text criteria compare summary.Fold forms (case and accents ignored).
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	defer s.guard("search")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.view
	all, err := s.srv.store.Messages(s.ctx(), s.acct.ID, v.mbox.ID)
	if err != nil {
		return nil, s.internal("search", err)
	}
	infos := make(map[uint32]*storage.MessageInfo, len(all))
	for i := range all {
		infos[all[i].UID] = &all[i]
	}
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	max, last := uint32(v.reported), v.lastUID()
	for i, uid := range v.uids[:v.reported] {
		info := infos[uid]
		if info == nil {
			continue
		}
		seq := uint32(i) + 1
		m := &candidate{s: s, seq: seq, max: max, last: last, info: info, raw: rawMessage{s: s, uid: uid}}
		ok, err := m.match(criteria)
		if err != nil {
			return nil, s.internal("search", err)
		}
		if !ok {
			continue
		}
		uidSet.AddNum(imap.UID(uid))
		num := seq
		if kind == imapserver.NumKindUID {
			num = uid
		} else {
			seqSet.AddNum(seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if options != nil && options.ReturnSave {
		s.searchRes = uidSet // RFC 5182 2.1
	}
	return &data, nil
}

// candidate is one message under evaluation; what it needs from storage
// beyond MessageInfo is loaded once, on demand.
type candidate struct {
	s         *session
	seq, max  uint32
	last      uint32
	info      *storage.MessageInfo
	raw       rawMessage
	sum       *summary.Message
	text      *[2]string // folded header, body
	header    textproto.MIMEHeader
	headerErr error
}

func (m *candidate) match(c *imap.SearchCriteria) (bool, error) {
	for _, set := range c.SeqNum {
		if !seqSetContains(set, m.seq, m.max) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			set = m.s.searchRes
		}
		if !uidSetContains(set, m.info.UID, m.last) {
			return false, nil
		}
	}
	if !matchDate(m.info.InternalDate, c.Since, c.Before) {
		return false, nil
	}
	for _, f := range c.Flag {
		if f == flagRecent || !hasFlag(m.info.Flags, string(f)) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if f != flagRecent && hasFlag(m.info.Flags, string(f)) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.info.Size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.info.Size >= c.Smaller {
		return false, nil
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		sum, err := m.summary()
		if err != nil {
			return false, err
		}
		// RFC 9051 6.4.4: messages without a Date header never match.
		if sum.Envelope == nil || sum.Envelope.Date.IsZero() || !matchDate(sum.Envelope.Date, c.SentSince, c.SentBefore) {
			return false, nil
		}
	}
	for _, h := range c.Header {
		ok, err := m.matchHeader(h.Key, h.Value)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, want := range c.Body {
		_, body, err := m.searchText()
		if err != nil || !strings.Contains(body, summary.Fold(want)) {
			return false, err
		}
	}
	for _, want := range c.Text {
		header, body, err := m.searchText()
		w := summary.Fold(want)
		if err != nil || !(strings.Contains(header, w) || strings.Contains(body, w)) {
			return false, err
		}
	}
	for i := range c.Not {
		ok, err := m.match(&c.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := m.match(&c.Or[i][0])
		if err != nil {
			return false, err
		}
		if a {
			continue
		}
		b, err := m.match(&c.Or[i][1])
		if err != nil || !b {
			return false, err
		}
	}
	return true, nil
}

// matchDate compares dates only, ignoring time and zone (RFC 9051 6.4.4).
func matchDate(t, since, before time.Time) bool {
	if since.IsZero() && before.IsZero() {
		return true
	}
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	if !before.IsZero() && !d.Before(time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	return true
}

func (m *candidate) summary() (*summary.Message, error) {
	if m.sum == nil {
		sum, err := m.s.summary(m.info, m.raw.get)
		if err != nil {
			return nil, err
		}
		m.sum = sum
	}
	return m.sum, nil
}

func (m *candidate) searchText() (header, body string, err error) {
	if m.text == nil {
		h, b, err := m.s.srv.store.SearchText(m.s.ctx(), m.s.acct.ID, m.s.view.mbox.ID, m.info.UID)
		if err != nil {
			return "", "", fmt.Errorf("search text of message %d: %w", m.info.UID, err)
		}
		m.text = &[2]string{h, b}
	}
	return m.text[0], m.text[1], nil
}

// matchHeader implements HEADER, SUBJECT, FROM, TO, CC, BCC (RFC 9051
// 6.4.4): substring of the decoded field value, folded on both sides. An
// empty value matches every message that has the field.
func (m *candidate) matchHeader(key, value string) (bool, error) {
	want := summary.Fold(value)
	if vals, ok := m.envelopeField(key); ok {
		if vals == nil {
			return false, nil
		}
		for _, v := range vals {
			if strings.Contains(summary.Fold(v), want) {
				return true, nil
			}
		}
		return false, nil
	}
	h, err := m.headers()
	if err != nil {
		return false, err
	}
	vals := h[textproto.CanonicalMIMEHeaderKey(key)]
	for _, v := range vals {
		if strings.Contains(summary.Fold(decodeWords(v)), want) {
			return true, nil
		}
	}
	return false, nil
}

// envelopeField answers from the summary for the fields it holds.
func (m *candidate) envelopeField(key string) ([]string, bool) {
	var get func(*imap.Envelope) []string
	switch strings.ToLower(key) {
	case "subject":
		get = func(e *imap.Envelope) []string { return nonEmpty(e.Subject) }
	case "from":
		get = func(e *imap.Envelope) []string { return addrs(e.From) }
	case "to":
		get = func(e *imap.Envelope) []string { return addrs(e.To) }
	case "cc":
		get = func(e *imap.Envelope) []string { return addrs(e.Cc) }
	case "bcc":
		get = func(e *imap.Envelope) []string { return addrs(e.Bcc) }
	case "reply-to":
		get = func(e *imap.Envelope) []string { return addrs(e.ReplyTo) }
	case "sender":
		get = func(e *imap.Envelope) []string { return addrs(e.Sender) }
	case "message-id":
		get = func(e *imap.Envelope) []string { return nonEmpty(e.MessageID) }
	default:
		return nil, false
	}
	sum, err := m.summary()
	if err != nil || sum.Envelope == nil {
		return nil, false // fall back on the raw header
	}
	return get(sum.Envelope), true
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func addrs(l []imap.Address) []string {
	out := make([]string, 0, len(l))
	for _, a := range l {
		out = append(out, a.Name+" <"+a.Addr()+">")
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// headers parses the raw message's header, once.
func (m *candidate) headers() (textproto.MIMEHeader, error) {
	if m.header == nil && m.headerErr == nil {
		raw, err := m.raw.get()
		if err != nil {
			m.headerErr = err
			return nil, err
		}
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			raw = raw[:i+4]
		}
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
		if h == nil {
			h = textproto.MIMEHeader{}
		}
		_ = err // a malformed header still yields the fields read so far
		m.header = h
	}
	return m.header, m.headerErr
}

var wordDecoder = mime.WordDecoder{}

func decodeWords(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}
