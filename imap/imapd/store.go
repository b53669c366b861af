package imapd

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
)

// Store changes flags (RFC 9051 6.4.6) and, unless .SILENT, answers with
// the new flags of every addressed message.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (err error) {
	defer s.guard("store")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.resolveWritable(numSet)
	if err != nil || len(ts) == 0 {
		return err
	}
	var op storage.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = storage.FlagsSet
	case imap.StoreFlagsAdd:
		op = storage.FlagsAdd
	case imap.StoreFlagsDel:
		op = storage.FlagsRemove
	default:
		return fmt.Errorf("imapd: unknown store operation %d", flags.Op)
	}
	var unchangedSince uint64
	if options != nil {
		unchangedSince = options.UnchangedSince
	}
	updated, _, err := s.srv.store.StoreFlags(s.ctx(), s.acct.ID, s.view.mbox.ID, uidsOf(ts), op, fromFlags(flags.Flags), unchangedSince)
	if err != nil {
		return s.internal("store", err)
	}
	// Take in what the feed holds now. It already carries this STORE's own
	// changes (published before StoreFlags returned): drop those, the reply
	// (or .SILENT) covers them; keep other sessions' changes, to report.
	ours := make(map[uint32]uint64, len(updated))
	for _, u := range updated {
		ours[u.UID] = u.ModSeq
	}
	mbox := s.view.mbox.ID
	if err := s.absorb(func(c storage.Change) bool {
		return c.Kind == storage.ChangeFlags && c.Mailbox == mbox && c.ModSeq == ours[c.UID]
	}); err != nil {
		return err
	}
	newFlags := make(map[uint32][]string, len(updated))
	for _, u := range updated {
		newFlags[u.UID] = u.Flags
		if s.view.modseq[u.UID] > u.ModSeq {
			continue // a later change by another session is pending: it is reported as is
		}
		_, pending := s.view.flags[u.UID]
		s.view.modseq[u.UID] = u.ModSeq
		delete(s.view.flags, u.UID)
		if flags.Silent && pending {
			// RFC 9051 6.4.6: .SILENT hides only this command's own change;
			// an earlier change by another session that the client was not
			// told about yet is reported, with the flags as they are now.
			s.view.flags[u.UID] = u.Flags
		}
	}
	if flags.Silent {
		return nil
	}
	// Messages whose flags did not change still get their FLAGS.
	var missing []target
	for _, t := range ts {
		if _, ok := newFlags[t.uid]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		infos, err := s.srv.store.MessagesByUID(s.ctx(), s.acct.ID, s.view.mbox.ID, uidsOf(missing))
		if err != nil {
			return s.internal("store", err)
		}
		for _, info := range infos {
			newFlags[info.UID] = info.Flags
		}
	}
	for _, t := range ts {
		f, ok := newFlags[t.uid]
		if !ok {
			continue
		}
		if s.view.modseq[t.uid] <= ours[t.uid] || ours[t.uid] == 0 {
			delete(s.view.flags, t.uid) // this reply carries the current flags
		}
		rw := w.CreateMessage(t.seq)
		rw.WriteUID(imap.UID(t.uid))
		rw.WriteFlags(toFlags(f))
		if err := rw.Close(); err != nil {
			return fmt.Errorf("imapd: store: %w", err)
		}
	}
	return nil
}
