package imapd

import (
	"bytes"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/summary"
)

// Fetch answers FETCH (RFC 9051 6.4.5) from MessageInfo and the stored
// summary; the raw message is read only for body and binary sections.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	defer s.guard("fetch")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.resolve(numSet)
	if len(ts) == 0 {
		return nil
	}
	infos, err := s.infos(ts)
	if err != nil {
		return s.internal("fetch", err)
	}
	// RFC 9051 6.4.5: BODY[] and BINARY[] without .PEEK set \Seen.
	if !s.view.readOnly && setsSeen(options) {
		if err := s.markSeen(infos); err != nil {
			return s.internal("fetch", err)
		}
	}
	for _, t := range ts {
		info, ok := infos[t.uid]
		if !ok {
			continue // expunged meanwhile: nothing to say (RFC 9051 7.5.1)
		}
		if err := s.fetchOne(w, t.seq, info, options); err != nil {
			return err
		}
	}
	return nil
}

// infos reads the MessageInfo of the targets that still exist, keyed by
// UID. When they are the whole view, the mailbox is listed instead, and
// messages the view does not hold yet are left out: markSeen must not touch
// them.
func (s *session) infos(ts []target) (map[uint32]*storage.MessageInfo, error) {
	var (
		list []storage.MessageInfo
		err  error
	)
	if len(ts) == len(s.view.uids) {
		list, err = s.srv.store.Messages(s.ctx(), s.acct.ID, s.view.mbox.ID)
	} else {
		list, err = s.srv.store.MessagesByUID(s.ctx(), s.acct.ID, s.view.mbox.ID, uidsOf(ts))
	}
	if err != nil {
		return nil, fmt.Errorf("reading messages of mailbox %d: %w", s.view.mbox.ID, err)
	}
	// Both ts and list are in UID order.
	m := make(map[uint32]*storage.MessageInfo, len(ts))
	i := 0
	for _, t := range ts {
		for i < len(list) && list[i].UID < t.uid {
			i++
		}
		if i < len(list) && list[i].UID == t.uid {
			m[t.uid] = &list[i]
		}
	}
	return m, nil
}

func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// markSeen adds \Seen to the messages that lack it; their FETCH responses
// then carry FLAGS (RFC 9051 6.4.5).
func (s *session) markSeen(infos map[uint32]*storage.MessageInfo) error {
	var uids []uint32
	for uid, info := range infos {
		if !hasFlag(info.Flags, storage.FlagSeen) {
			uids = append(uids, uid)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	updated, _, err := s.srv.store.StoreFlags(s.ctx(), s.acct.ID, s.view.mbox.ID, uids, storage.FlagsAdd, []string{storage.FlagSeen}, 0)
	if err != nil {
		return fmt.Errorf("setting \\Seen: %w", err)
	}
	for _, u := range updated {
		if info := infos[u.UID]; info != nil {
			info.Flags, info.ModSeq = u.Flags, u.ModSeq
			s.view.modseq[u.UID] = u.ModSeq
			s.view.flags[u.UID] = u.Flags // reported as unsolicited FETCH FLAGS unless fetched now
		}
	}
	return nil
}

func (s *session) fetchOne(w *imapserver.FetchWriter, seq uint32, info *storage.MessageInfo, options *imap.FetchOptions) error {
	rw := w.CreateMessage(seq)
	rw.WriteUID(imap.UID(info.UID)) // always, RFC 9051 6.4.9 for UID FETCH and harmless otherwise
	_, flagsPending := s.view.flags[info.UID]
	if options.Flags || flagsPending {
		rw.WriteFlags(toFlags(info.Flags))
		delete(s.view.flags, info.UID)
	}
	if options.InternalDate {
		rw.WriteInternalDate(info.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(info.Size)
	}
	raw := rawMessage{s: s, uid: info.UID}
	if options.Envelope || options.BodyStructure != nil {
		sum, err := s.summary(info, raw.get)
		if err != nil {
			_ = rw.Close()
			return s.internal("fetch", err)
		}
		if options.Envelope {
			rw.WriteEnvelope(sum.Envelope)
		}
		if options.BodyStructure != nil {
			rw.WriteBodyStructure(sum.Body)
		}
	}
	if len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 {
		b, err := raw.get()
		if err != nil {
			_ = rw.Close()
			return s.internal("fetch", err)
		}
		for _, bs := range options.BodySection {
			data := imapserver.ExtractBodySection(bytes.NewReader(b), bs)
			if err := writeLiteral(rw.WriteBodySection(bs, int64(len(data))), data); err != nil {
				return err
			}
		}
		for _, bs := range options.BinarySection {
			data := imapserver.ExtractBinarySection(bytes.NewReader(b), bs)
			if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(data))), data); err != nil {
				return err
			}
		}
		for _, bss := range options.BinarySectionSize {
			rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(b), bss))
		}
	}
	if err := rw.Close(); err != nil {
		return fmt.Errorf("imapd: fetch: %w", err)
	}
	return nil
}

// rawMessage reads a message of the view from storage once, on first use.
type rawMessage struct {
	s   *session
	uid uint32
	b   []byte
}

func (r *rawMessage) get() ([]byte, error) {
	if r.b == nil {
		b, err := r.s.srv.store.RawMessage(r.s.ctx(), r.s.acct.ID, r.s.view.mbox.ID, r.uid)
		if err != nil {
			return nil, fmt.Errorf("reading message %d: %w", r.uid, err)
		}
		r.b = b
	}
	return r.b, nil
}

// summary decodes the stored summary, reparsing the raw message if the
// stored one is unreadable.
func (s *session) summary(info *storage.MessageInfo, loadRaw func() ([]byte, error)) (*summary.Message, error) {
	sum, err := summary.Decode(info.Summary)
	if err == nil && sum.Envelope != nil && sum.Body != nil {
		return sum, nil
	}
	s.log.Warn("unreadable stored summary, reparsing", "uid", info.UID, "err", err)
	raw, rerr := loadRaw()
	if rerr != nil {
		return nil, rerr
	}
	if sum, err = summary.Parse(raw); err != nil || sum == nil || sum.Envelope == nil || sum.Body == nil {
		sum = summary.Minimal(raw)
	}
	return sum, nil
}

// writeLiteral streams a section to the client; the encoder writes through
// its buffered writer in chunks, so a large section is not copied again.
func writeLiteral(wc io.WriteCloser, data []byte) error {
	if _, err := wc.Write(data); err != nil {
		_ = wc.Close()
		return fmt.Errorf("imapd: writing section: %w", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("imapd: writing section: %w", err)
	}
	return nil
}
