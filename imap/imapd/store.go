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
	defer s.guard("store", &err)
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
	newFlags := make(map[uint32][]string, len(updated))
	for _, u := range updated {
		newFlags[u.UID] = u.Flags
		s.view.modseq[u.UID] = u.ModSeq // the feed's echo is then ignored
		if flags.Silent {
			// RFC 9051 6.4.6: .SILENT; our own change is not echoed.
			delete(s.view.flags, u.UID)
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
		delete(s.view.flags, t.uid)
		rw := w.CreateMessage(t.seq)
		rw.WriteUID(imap.UID(t.uid))
		rw.WriteFlags(toFlags(f))
		if err := rw.Close(); err != nil {
			return fmt.Errorf("imapd: store: %w", err)
		}
	}
	return nil
}
