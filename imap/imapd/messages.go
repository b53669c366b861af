package imapd

import (
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
)

var (
	errTooBig   = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too large"}
	errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "Mailbox is read-only"}
)

// Append stores a message (RFC 9051 6.3.12) and answers APPENDUID
// (RFC 4315 3). OK is only sent once the store has committed.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (_ *imap.AppendData, err error) {
	defer s.guard("append")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := int64(s.srv.cfg.AppendLimit)
	if r.Size() > limit {
		return nil, errTooBig // RFC 7889 4
	}
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("imapd: reading append literal: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, errTooBig
	}
	msg := storage.NewMessage{Raw: raw}
	if options != nil {
		msg.Flags = fromFlags(options.Flags)
		msg.InternalDate = options.Time
	}
	d, err := s.srv.store.Append(s.ctx(), s.acct.ID, normName(name), msg)
	if err != nil {
		return nil, s.destErr("append", err)
	}
	return &imap.AppendData{UID: imap.UID(d.UID), UIDValidity: d.UIDValidity}, nil
}

// Copy copies messages (RFC 9051 6.4.7) and answers COPYUID (RFC 4315 3).
func (s *session) Copy(numSet imap.NumSet, dest string) (_ *imap.CopyData, err error) {
	defer s.guard("copy")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.resolve(numSet)
	if len(ts) == 0 {
		return nil, nil // plain OK: COPYUID cannot carry empty sets (RFC 4315 3)
	}
	res, err := s.srv.store.Copy(s.ctx(), s.acct.ID, s.view.mbox.ID, uidsOf(ts), normName(dest))
	if err != nil {
		return nil, s.destErr("copy", err)
	}
	return copyData(res), nil
}

func copyData(res storage.CopyResult) *imap.CopyData {
	data := &imap.CopyData{UIDValidity: res.UIDValidity}
	for _, u := range res.SourceUIDs {
		data.SourceUIDs.AddNum(imap.UID(u))
	}
	for _, u := range res.DestUIDs {
		data.DestUIDs.AddNum(imap.UID(u))
	}
	return data
}

// Move moves messages atomically (RFC 6851 3): COPYUID first, then one
// EXPUNGE per moved message, each with the sequence number it has at that
// moment.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) (err error) {
	defer s.guard("move")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.resolveWritable(numSet)
	if err != nil || len(ts) == 0 {
		return err
	}
	res, err := s.srv.store.Move(s.ctx(), s.acct.ID, s.view.mbox.ID, uidsOf(ts), normName(dest))
	if err != nil {
		return s.destErr("move", err)
	}
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return fmt.Errorf("imapd: move: %w", err)
	}
	if err := s.view.expunge(w, res.SourceUIDs); err != nil {
		return fmt.Errorf("imapd: move: %w", err)
	}
	return nil
}

// Expunge removes messages flagged \Deleted (RFC 9051 6.4.3, UID EXPUNGE
// 6.4.9). CLOSE calls it too: on a mailbox opened with EXAMINE nothing is
// removed (RFC 9051 6.4.1).
func (s *session) Expunge(w *imapserver.ExpungeWriter, uidSet *imap.UIDSet) (err error) {
	defer s.guard("expunge")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.view.readOnly {
		return nil
	}
	var uids []uint32
	if uidSet != nil {
		uids = uidsOf(s.resolve(*uidSet))
		if len(uids) == 0 {
			return nil
		}
	}
	removed, err := s.srv.store.Expunge(s.ctx(), s.acct.ID, s.view.mbox.ID, uids)
	if err != nil {
		return s.mailboxErr("expunge", err)
	}
	if err := s.view.expunge(w, removed); err != nil {
		return fmt.Errorf("imapd: expunge: %w", err)
	}
	return nil
}
