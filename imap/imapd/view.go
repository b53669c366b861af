package imapd

import (
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
)

// view is a session's picture of its selected mailbox: the UIDs the client
// knows, in order (sequence number = index+1, RFC 9051 2.3.1.2).
//
// Changes from the feed are applied idempotently. Expunges by other
// sessions are queued in gone until the client may be told (RFC 9051 7.5.1:
// never during FETCH, STORE or SEARCH); until then the message keeps its
// sequence number and FETCH returns nothing for it.
type view struct {
	mbox     storage.Mailbox
	readOnly bool
	uids     []uint32
	reported int                 // how many of uids the client was told exist
	modseq   map[uint32]uint64   // last modseq known per UID, to drop echoes
	gone     map[uint32]struct{} // expunged in storage, not yet reported
	flags    map[uint32][]string // flag changes to report
}

func newView(mbox storage.Mailbox, readOnly bool, msgs []storage.MessageInfo) *view {
	v := &view{
		mbox:     mbox,
		readOnly: readOnly,
		uids:     make([]uint32, len(msgs)),
		modseq:   make(map[uint32]uint64, len(msgs)),
		gone:     make(map[uint32]struct{}),
		flags:    make(map[uint32][]string),
	}
	for i, m := range msgs {
		v.uids[i] = m.UID
		v.modseq[m.UID] = m.ModSeq
	}
	v.reported = len(v.uids)
	return v
}

// index returns the position of uid in the view, or -1.
func (v *view) index(uid uint32) int {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return -1
	}
	return i
}

func (v *view) lastUID() uint32 {
	if len(v.uids) == 0 {
		return 0
	}
	return v.uids[len(v.uids)-1]
}

// apply folds one feed change into the view.
func (v *view) apply(c storage.Change) {
	if c.Mailbox != v.mbox.ID {
		return
	}
	switch c.Kind {
	case storage.ChangeMessageAdded:
		// UIDs only grow (RFC 9051 2.3.1.1): an older one is a replay.
		if c.UID <= v.lastUID() {
			return
		}
		v.uids = append(v.uids, c.UID)
		v.modseq[c.UID] = c.ModSeq
	case storage.ChangeFlags:
		if v.index(c.UID) < 0 || c.ModSeq <= v.modseq[c.UID] {
			return
		}
		if _, gone := v.gone[c.UID]; gone {
			return
		}
		v.modseq[c.UID] = c.ModSeq
		v.flags[c.UID] = c.Flags
	case storage.ChangeExpunged:
		if v.index(c.UID) >= 0 {
			v.gone[c.UID] = struct{}{}
			delete(v.flags, c.UID)
		}
	case storage.ChangeMailboxDeleted:
		for _, uid := range v.uids {
			v.gone[uid] = struct{}{}
		}
		clear(v.flags)
	}
}

// resync compares the view with the mailbox's current messages after the
// feed overflowed.
func (v *view) resync(msgs []storage.MessageInfo) {
	present := make(map[uint32]storage.MessageInfo, len(msgs))
	for _, m := range msgs {
		present[m.UID] = m
	}
	for _, uid := range v.uids {
		m, ok := present[uid]
		if !ok {
			v.gone[uid] = struct{}{}
			delete(v.flags, uid)
			continue
		}
		if m.ModSeq > v.modseq[uid] {
			v.modseq[uid] = m.ModSeq
			v.flags[uid] = m.Flags
		}
	}
	last := v.lastUID()
	for _, m := range msgs {
		if m.UID > last {
			v.uids = append(v.uids, m.UID)
			v.modseq[m.UID] = m.ModSeq
		}
	}
}

// remove drops uid from the view and returns its former sequence number
// (0 if it was not there).
func (v *view) remove(uid uint32) uint32 {
	i := v.index(uid)
	if i < 0 {
		return 0
	}
	v.uids = slices.Delete(v.uids, i, i+1)
	delete(v.modseq, uid)
	delete(v.gone, uid)
	delete(v.flags, uid)
	if i < v.reported {
		v.reported--
		return uint32(i) + 1
	}
	return 0
}

// expunge drops uids from the view and sends an EXPUNGE for each one the
// client knew, with the sequence number it has at that moment (RFC 9051
// 7.5.1). The writer is EXPUNGE's, MOVE's or an update's.
func (v *view) expunge(w interface{ WriteExpunge(seq uint32) error }, uids []uint32) error {
	for _, uid := range uids {
		if seq := v.remove(uid); seq > 0 {
			if err := w.WriteExpunge(seq); err != nil {
				return fmt.Errorf("writing expunge: %w", err)
			}
		}
	}
	return nil
}

// flush writes pending updates: EXPUNGE (when allowed), EXISTS, then FETCH
// FLAGS (RFC 9051 7.4.1, 7.5.1, 7.5.2).
func (v *view) flush(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if allowExpunge && len(v.gone) > 0 {
		gone := make([]uint32, 0, len(v.gone))
		for uid := range v.gone {
			gone = append(gone, uid)
		}
		slices.Sort(gone)
		if err := v.expunge(w, gone); err != nil {
			return err
		}
	}
	if len(v.uids) != v.reported {
		v.reported = len(v.uids)
		if err := w.WriteNumMessages(uint32(len(v.uids))); err != nil {
			return fmt.Errorf("writing exists: %w", err)
		}
	}
	if len(v.flags) > 0 {
		uids := make([]uint32, 0, len(v.flags))
		for uid := range v.flags {
			uids = append(uids, uid)
		}
		slices.Sort(uids)
		for _, uid := range uids {
			i := v.index(uid)
			if i < 0 {
				continue
			}
			if err := w.WriteMessageFlags(uint32(i)+1, imap.UID(uid), toFlags(v.flags[uid])); err != nil {
				return fmt.Errorf("writing flags: %w", err)
			}
		}
		clear(v.flags)
	}
	return nil
}

// target is a message the command addresses.
type target struct {
	seq uint32
	uid uint32
}

// resolve turns a sequence or UID set into the messages of the view it
// names, in order, skipping messages expunged but not yet reported. Out of
// range numbers name nothing (never a panic).
func (s *session) resolve(numSet imap.NumSet) []target {
	v := s.view
	if imap.IsSearchRes(numSet) {
		if s.searchRes == nil {
			return nil
		}
		numSet = s.searchRes // RFC 5182 "$"
	}
	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		n := uint32(v.reported)
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, n)
			if start == 0 {
				continue
			}
			for seq := start; seq <= stop && seq <= n; seq++ {
				out = append(out, target{seq: seq, uid: v.uids[seq-1]})
			}
		}
		out = dedupe(out)
	case imap.UIDSet:
		last := v.lastUID()
		for i, uid := range v.uids[:v.reported] {
			if uidSetContains(set, uid, last) {
				out = append(out, target{seq: uint32(i) + 1, uid: uid})
			}
		}
	}
	return slices.DeleteFunc(out, func(t target) bool {
		_, gone := v.gone[t.uid]
		return gone
	})
}

// resolveWritable is resolve for STORE and MOVE, which a mailbox opened
// with EXAMINE refuses (RFC 9051 6.3.3).
func (s *session) resolveWritable(numSet imap.NumSet) ([]target, error) {
	if s.view.readOnly {
		return nil, errReadOnly
	}
	return s.resolve(numSet), nil
}

// staticRange replaces "*" (0) by max and orders the bounds (RFC 9051 9:
// "a:b" and "b:a" are the same range).
func staticRange(start, stop, max uint32) (uint32, uint32) {
	if start == 0 {
		start = max
	}
	if stop == 0 {
		stop = max
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

func uidSetContains(set imap.UIDSet, uid, last uint32) bool {
	for _, r := range set {
		start, stop := staticRange(uint32(r.Start), uint32(r.Stop), last)
		if uid >= start && uid <= stop {
			return true
		}
	}
	return false
}

func seqSetContains(set imap.SeqSet, seq, max uint32) bool {
	for _, r := range set {
		start, stop := staticRange(r.Start, r.Stop, max)
		if seq >= start && seq <= stop {
			return true
		}
	}
	return false
}

func dedupe(ts []target) []target {
	slices.SortFunc(ts, func(a, b target) int { return int(a.seq) - int(b.seq) })
	return slices.CompactFunc(ts, func(a, b target) bool { return a.seq == b.seq })
}

func uidsOf(ts []target) []uint32 {
	uids := make([]uint32, len(ts))
	for i, t := range ts {
		uids[i] = t.uid
	}
	return uids
}

func toFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, len(fs))
	for i, f := range fs {
		out[i] = imap.Flag(f)
	}
	return out
}

func fromFlags(fs []imap.Flag) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if f == flagRecent {
			continue // RFC 9051 dropped \Recent; it cannot be stored
		}
		out = append(out, string(f))
	}
	return out
}

// flagRecent is IMAP4rev1's \Recent (RFC 3501 2.3.2), gone from IMAP4rev2:
// no message ever carries it here.
const flagRecent = imap.Flag(`\Recent`)
