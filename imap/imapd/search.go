package imapd

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"slices"
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
//
// The candidates come from MessageIndex (no summaries). A first pass
// settles every candidate whose criteria need no summary; the summaries of
// the others are then read in one MessagesByUID call and those candidates
// evaluated again: a search on flags, dates or sizes never reads a summary.
// When the criteria need every summary (summariesForAll), the candidates
// come from Messages instead, in the one query.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	defer s.guard("search")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.view
	list, withSummary := s.srv.store.MessageIndex, summariesForAll(criteria)
	if withSummary {
		list = s.srv.store.Messages // one scan beats a list of every UID
	}
	all, err := list(s.ctx(), s.acct.ID, v.mbox.ID)
	if err != nil {
		return nil, s.internal("search", err)
	}
	infos := make(map[uint32]*storage.MessageInfo, len(all))
	for i := range all {
		infos[all[i].UID] = &all[i]
	}
	var matched, pending []*candidate
	max, last := uint32(v.reported), v.lastUID()
	for i, uid := range v.uids[:v.reported] {
		info := infos[uid]
		if info == nil {
			continue
		}
		m := &candidate{s: s, seq: uint32(i) + 1, max: max, last: last, info: info, withSummary: withSummary, raw: rawMessage{s: s, uid: uid}}
		ok, err := m.match(criteria)
		switch {
		case errors.Is(err, errNeedSummary):
			pending = append(pending, m)
		case err != nil:
			return nil, s.internal("search", err)
		case ok:
			matched = append(matched, m)
		}
	}
	if len(pending) > 0 {
		if err := s.loadSummaries(pending); err != nil {
			return nil, s.internal("search", err)
		}
		for _, m := range pending {
			if !m.withSummary {
				continue // expunged since the index was read
			}
			ok, err := m.match(criteria)
			if err != nil {
				return nil, s.internal("search", err)
			}
			if ok {
				matched = append(matched, m)
			}
		}
		slices.SortFunc(matched, func(a, b *candidate) int { return cmp.Compare(a.seq, b.seq) })
	}
	return s.searchData(kind, matched, options), nil
}

// searchData builds SEARCH's result from the matching candidates, in
// sequence order, and saves it for $ when asked (RFC 5182 2.1).
func (s *session) searchData(kind imapserver.NumKind, matched []*candidate, options *imap.SearchOptions) *imap.SearchData {
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	for _, m := range matched {
		uid := m.info.UID
		uidSet.AddNum(imap.UID(uid))
		num := m.seq
		if kind == imapserver.NumKindUID {
			num = uid
		} else {
			seqSet.AddNum(m.seq)
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
	return &data
}

// summariesForAll reports criteria that need the summary of every message:
// a summary criterion (SENTBEFORE/SENTSINCE/SENTON, or first among the
// header criteria an envelope field such as SUBJECT or FROM) with nothing
// cheaper beside it to narrow the candidates first (RFC 9051 6.4.4: the
// keys of one SEARCH are ANDed).
func summariesForAll(c *imap.SearchCriteria) bool {
	if len(c.SeqNum) > 0 || len(c.UID) > 0 || !c.Since.IsZero() || !c.Before.IsZero() ||
		len(c.Flag) > 0 || len(c.NotFlag) > 0 || c.Larger > 0 || c.Smaller > 0 {
		return false
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		return true
	}
	return len(c.Header) > 0 && envelopeGetter(c.Header[0].Key) != nil
}

// errNeedSummary stops the evaluation of a candidate whose summary is not
// loaded yet and that reached a criterion needing it.
var errNeedSummary = errors.New("imapd: search: summary not loaded")

// loadSummaries reads the summaries of the candidates in one query. Those
// no longer in the mailbox are left without (withSummary false).
func (s *session) loadSummaries(cs []*candidate) error {
	uids := make([]uint32, len(cs))
	for i, m := range cs {
		uids[i] = m.info.UID
	}
	infos, err := s.srv.store.MessagesByUID(s.ctx(), s.acct.ID, s.view.mbox.ID, uids)
	if err != nil {
		return fmt.Errorf("reading summaries: %w", err)
	}
	sums := make(map[uint32][]byte, len(infos))
	for _, info := range infos {
		sums[info.UID] = info.Summary
	}
	for _, m := range cs {
		if sum, ok := sums[m.info.UID]; ok {
			// Flags and dates stay those of the index the first pass used.
			m.info.Summary = sum
			m.withSummary = true
		}
	}
	return nil
}

// candidate is one message under evaluation; what it needs from storage
// beyond MessageInfo is loaded once, on demand, except its summary, which
// Search loads in bulk (loadSummaries) before withSummary is set.
type candidate struct {
	s           *session
	seq, max    uint32
	last        uint32
	info        *storage.MessageInfo
	withSummary bool // info.Summary was read
	raw         rawMessage
	sum         *summary.Message
	text        *[2]string // folded header, body
	header      textproto.MIMEHeader
	headerErr   error
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
		if !m.withSummary {
			return nil, errNeedSummary
		}
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
	vals, ok, err := m.envelopeField(key)
	if err != nil {
		return false, err
	}
	if ok {
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
	for _, v := range h[textproto.CanonicalMIMEHeaderKey(key)] {
		if strings.Contains(summary.Fold(decodeWords(v)), want) {
			return true, nil
		}
	}
	return false, nil
}

// envelopeField answers from the summary for the fields it holds; ok is
// false for other fields, and when the summary has no envelope. The only
// error is errNeedSummary.
func (m *candidate) envelopeField(key string) (vals []string, ok bool, err error) {
	get := envelopeGetter(key)
	if get == nil {
		return nil, false, nil
	}
	sum, err := m.summary()
	if errors.Is(err, errNeedSummary) {
		return nil, false, err
	}
	if err != nil || sum.Envelope == nil {
		return nil, false, nil // fall back on the raw header
	}
	return get(sum.Envelope), true, nil
}

// envelopeGetter returns how to read a header field from the envelope, or
// nil for a field the envelope does not hold.
func envelopeGetter(key string) func(*imap.Envelope) []string {
	switch strings.ToLower(key) {
	case "subject":
		return func(e *imap.Envelope) []string { return nonEmpty(e.Subject) }
	case "from":
		return func(e *imap.Envelope) []string { return addrs(e.From) }
	case "to":
		return func(e *imap.Envelope) []string { return addrs(e.To) }
	case "cc":
		return func(e *imap.Envelope) []string { return addrs(e.Cc) }
	case "bcc":
		return func(e *imap.Envelope) []string { return addrs(e.Bcc) }
	case "reply-to":
		return func(e *imap.Envelope) []string { return addrs(e.ReplyTo) }
	case "sender":
		return func(e *imap.Envelope) []string { return addrs(e.Sender) }
	case "message-id":
		return func(e *imap.Envelope) []string { return nonEmpty(e.MessageID) }
	}
	return nil
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
