package imapd

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
)

var (
	// Flags every mailbox accepts (RFC 9051 7.3.1); \* allows keywords.
	mailboxFlags   = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	permanentFlags = append(append([]imap.Flag(nil), mailboxFlags...), imap.FlagWildcard)
)

// Select opens a mailbox (RFC 9051 6.3.2, EXAMINE 6.3.3). The feed was
// subscribed at login; pending changes are dropped before the messages are
// read, so every change committed after the read is still delivered.
func (s *session) Select(name string, options *imap.SelectOptions) (_ *imap.SelectData, err error) {
	defer s.guard("select")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view = nil
	s.searchRes = nil // RFC 5182 2.1: $ is reset by SELECT
	mbox, err := s.srv.store.MailboxByName(s.ctx(), s.acct.ID, normName(name))
	if err != nil {
		return nil, s.mailboxErr("select", err)
	}
	s.sub.Next()
	// The view keeps UIDs, modseqs and flags only: no summaries to read.
	msgs, err := s.srv.store.MessageIndex(s.ctx(), s.acct.ID, mbox.ID)
	if err != nil {
		return nil, s.mailboxErr("select", err)
	}
	readOnly := options != nil && options.ReadOnly
	s.view = newView(mbox, readOnly, msgs)
	uidNext := mbox.UIDNext
	if n := s.view.lastUID() + 1; n > uidNext {
		uidNext = n
	}
	data := &imap.SelectData{
		Flags:          mailboxFlags,
		PermanentFlags: permanentFlags,
		NumMessages:    uint32(len(msgs)),
		UIDNext:        imap.UID(uidNext),
		UIDValidity:    mbox.UIDValidity,
	}
	if readOnly {
		data.PermanentFlags = nil // RFC 9051 6.3.3
	}
	// RFC 3501 6.3.1 (IMAP4rev1 clients): first unseen message.
	for i, m := range msgs {
		if !hasFlag(m.Flags, storage.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i) + 1
			break
		}
	}
	return data, nil
}

// Unselect leaves the selected state (RFC 3691, RFC 9051 6.4.2). CLOSE
// expunges first through Expunge.
func (s *session) Unselect() (err error) {
	defer s.guard("unselect")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view = nil
	s.searchRes = nil
	return nil
}

// Poll reports what changed since the last command (RFC 9051 6.1.2, 7.4.1).
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) (err error) {
	defer s.guard("poll")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update(w, allowExpunge)
}

// Idle waits for changes and reports them until the client says DONE
// (RFC 2177, RFC 9051 6.3.13).
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) (err error) {
	defer s.guard("idle")(&err)
	s.srv.idling.Add(1)
	defer s.srv.idling.Add(-1)
	s.mu.Lock()
	sub := s.sub
	err = s.update(w, true)
	s.mu.Unlock()
	if err != nil || sub == nil {
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		case <-s.srv.ctx.Done():
			return nil
		case <-sub.Ready():
			s.mu.Lock()
			err := s.update(w, true)
			s.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// update takes the feed's pending changes into the view and writes them.
// The caller holds s.mu.
func (s *session) update(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if err := s.absorb(nil); err != nil || s.view == nil {
		return err
	}
	if err := s.view.flush(w, allowExpunge); err != nil {
		return fmt.Errorf("imapd: update: %w", err)
	}
	return nil
}

// absorb takes the feed's pending changes into the view without writing
// anything, dropping those skip returns true for (skip may be nil). With no
// mailbox selected the changes are discarded. The caller holds s.mu.
func (s *session) absorb(skip func(storage.Change) bool) error {
	if s.sub == nil {
		return nil
	}
	changes, overflowed := s.sub.Next()
	v := s.view
	if v == nil {
		return nil
	}
	if overflowed {
		msgs, err := s.srv.store.MessageIndex(s.ctx(), s.acct.ID, v.mbox.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			msgs = nil // the mailbox was deleted
		case err != nil:
			return s.internal("resync", fmt.Errorf("resynchronising mailbox %d: %w", v.mbox.ID, err))
		}
		v.resync(msgs)
	}
	for _, c := range changes {
		if skip == nil || !skip(c) {
			v.apply(c)
		}
	}
	return nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if equalFold(x, f) {
			return true
		}
	}
	return false
}

// equalFold compares ASCII flag names case-insensitively (RFC 9051 2.3.2).
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
