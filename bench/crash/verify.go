package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// mailboxState is what the previous verification saw of a mailbox, so
// that the next one can check UIDs never go backwards (RFC 9051 2.3.1.1:
// UIDs strictly ascend, UIDVALIDITY stays while UIDs are not reused).
type mailboxState struct {
	uidValidity uint32
	uidNext     uint32
	byUID       map[uint32]string // UID -> Message-ID
}

// checker verifies the journal against the server after each restart,
// and remembers what it saw across rounds.
type checker struct {
	t         *target
	users     []user
	chatAs    user
	mailboxes map[string]*mailboxState // by user address (INBOX)
	chatSeen  map[int64]string         // room seq -> body, from the last verification
	chatLast  int64
}

// verdict is one verification's result. Lost counts journaled
// acknowledgements the server no longer has; violations are UID or seq
// rules broken; both must be zero.
type verdict struct {
	submits, deliveries, appends, flags, chats int
	lostDeliveries, lostAppends, lostFlags     int
	lostChats, violations                      int
	problems                                   []string
}

func (v *verdict) problem(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *verdict) lost() int {
	return v.lostDeliveries + v.lostAppends + v.lostFlags + v.lostChats
}

// mailboxView is the content of one INBOX now.
type mailboxView struct {
	uidValidity uint32
	uidNext     uint32
	byMID       map[string][]uint32 // Message-ID -> UIDs
	flags       map[uint32][]imap.Flag
}

// snapshot is the server's state as the verification read it.
type snapshot struct {
	views map[string]*mailboxView // by user address
	chat  map[int64]chatMessage   // by seq; nil when unread
}

// verify reads the server's state once and checks every record of the
// journal, all rounds so far, against it.
func (ck *checker) verify(ctx context.Context, recs []record) (verdict, snapshot) {
	var v verdict
	snap := snapshot{views: map[string]*mailboxView{}}
	for _, u := range ck.users {
		mv, err := ck.readMailbox(ctx, u, &v)
		if err != nil {
			v.violations++
			v.problem("reading the INBOX of %s: %v", u.addr, err)
			continue
		}
		snap.views[u.addr] = mv
	}
	if slices.ContainsFunc(recs, func(r record) bool { return r.Kind == kindChat }) {
		var err error
		if snap.chat, err = ck.readRoom(ctx, &v); err != nil {
			v.violations++
			v.problem("reading the chat room: %v", err)
		}
	}
	check(snap, recs, &v)
	return v, snap
}

// check counts each record of recs the snapshot does not bear out.
func check(snap snapshot, recs []record, v *verdict) {
	views, chat := snap.views, snap.chat
	for _, r := range recs {
		switch r.Kind {
		case kindSubmit:
			v.submits++
			for _, to := range r.To {
				v.deliveries++
				mv := views[to]
				if mv == nil {
					v.lostDeliveries++
					continue
				}
				switch uids := mv.byMID[r.MessageID]; {
				case len(uids) == 0:
					v.lostDeliveries++
					v.problem("LOST (round %d): message <%s> acknowledged with 250, not in the INBOX of %s", r.Round, r.MessageID, to)
				case len(uids) > 1:
					v.violations++
					v.problem("DUPLICATE (round %d): message <%s> %d times in the INBOX of %s (UIDs %v)", r.Round, r.MessageID, len(uids), to, uids)
				}
			}
		case kindAppend:
			v.appends++
			mv := views[r.User]
			if mv == nil {
				v.lostAppends++
				continue
			}
			uids := mv.byMID[r.MessageID]
			switch {
			case mv.uidValidity != r.UIDValidity:
				v.violations++
				v.problem("UIDVALIDITY of the INBOX of %s is %d, APPEND (round %d) answered %d", r.User, mv.uidValidity, r.Round, r.UIDValidity)
			case len(uids) == 0:
				v.lostAppends++
				v.problem("LOST (round %d): APPEND of <%s> answered OK [APPENDUID %d %d], not in the INBOX of %s", r.Round, r.MessageID, r.UIDValidity, r.UID, r.User)
			case !slices.Contains(uids, r.UID):
				v.violations++
				v.problem("UID CHANGED (round %d): <%s> appended as UID %d, now at UID %v in the INBOX of %s", r.Round, r.MessageID, r.UID, uids, r.User)
			}
		case kindFlag:
			v.flags++
			mv := views[r.User]
			if mv == nil {
				v.lostFlags++
				continue
			}
			if !slices.Contains(mv.flags[r.UID], imap.Flag(r.Flag)) {
				v.lostFlags++
				v.problem("LOST (round %d): UID STORE +FLAGS (%s) on UID %d answered OK, flags now %v in the INBOX of %s", r.Round, r.Flag, r.UID, mv.flags[r.UID], r.User)
			}
		case kindChat:
			v.chats++
			if chat == nil {
				v.lostChats++
				continue
			}
			m, ok := chat[r.Seq]
			switch {
			case !ok:
				v.lostChats++
				v.problem("LOST (round %d): chat message %s acked as seq %d of room %d, not in the room's history", r.Round, r.ClientID, r.Seq, r.Room)
			case m.Body != r.Body || !strings.EqualFold(m.SenderAddress, r.User):
				v.lostChats++
				v.problem("LOST (round %d): chat message %s acked as seq %d of room %d, which now holds %q from %s", r.Round, r.ClientID, r.Seq, r.Room, m.Body, m.SenderAddress)
			}
		}
	}
}

// canaries are acknowledgements the server never gave, one of each kind:
// checked against a real snapshot, each must come out lost. This shows
// that the check can fail, and that a pass is not an artefact of, say,
// an empty view.
func canaries(users []user, room int64, uidValidity uint32) []record {
	u := users[0].addr
	return []record{
		{Kind: kindSubmit, User: u, To: []string{u}, MessageID: "canary.never-sent@invalid"},
		{Kind: kindAppend, User: u, Mailbox: "INBOX", MessageID: "canary.never-appended@invalid", UID: 1 << 30, UIDValidity: uidValidity},
		{Kind: kindFlag, User: u, Mailbox: "INBOX", UID: 1 << 30, UIDValidity: uidValidity, Flag: string(imap.FlagFlagged)},
		{Kind: kindChat, User: u, Room: room, Seq: 1 << 40, ClientID: "canary", Body: "canary"},
	}
}

// checkCanaries returns an error unless every canary is found lost.
func (ck *checker) checkCanaries(snap snapshot) error {
	mv := snap.views[ck.users[0].addr]
	if mv == nil || snap.chat == nil {
		return errors.New("canaries: no snapshot to check them against")
	}
	var v verdict
	check(snap, canaries(ck.users, ck.t.room, mv.uidValidity), &v)
	if v.lostDeliveries != 1 || v.lostAppends != 1 || v.lostFlags != 1 || v.lostChats != 1 {
		return fmt.Errorf("canaries: the check missed a fabricated acknowledgement: lost deliveries %d, appends %d, flags %d, chat %d (want 1 each)",
			v.lostDeliveries, v.lostAppends, v.lostFlags, v.lostChats)
	}
	return nil
}

// readMailbox SELECTs the user's INBOX, fetches every message's UID,
// flags and Message-ID, and checks the UID rules against what the last
// verification saw.
func (ck *checker) readMailbox(ctx context.Context, u user, v *verdict) (*mailboxView, error) {
	cl, err := imapclient.DialStartTLS(ck.t.addrs.imap, &imapclient.Options{TLSConfig: ck.t.tls})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	if err := cl.Login(u.addr, u.pass).Wait(); err != nil {
		return nil, fmt.Errorf("LOGIN: %w", err)
	}
	sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("EXAMINE: %w", err)
	}
	mv := &mailboxView{uidValidity: sel.UIDValidity, uidNext: uint32(sel.UIDNext),
		byMID: map[string][]uint32{}, flags: map[uint32][]imap.Flag{}}
	var msgs []*imapclient.FetchMessageBuffer
	if sel.NumMessages > 0 {
		// RFC 9051 6.4.5: FETCH 1:* (UID FLAGS ENVELOPE).
		msgs, err = cl.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil {
			return nil, fmt.Errorf("FETCH: %w", err)
		}
		if len(msgs) != int(sel.NumMessages) {
			return nil, fmt.Errorf("FETCH 1:* returned %d messages, EXISTS %d", len(msgs), sel.NumMessages)
		}
	}
	cl.Logout().Wait()

	fetched := make([]fetchedMessage, len(msgs))
	for i, m := range msgs {
		fetched[i] = fetchedMessage{seq: m.SeqNum, uid: uint32(m.UID), flags: m.Flags}
		if m.Envelope != nil {
			fetched[i].mid = strings.Trim(m.Envelope.MessageID, "<> ")
		}
	}
	ck.mailboxes[u.addr] = checkUIDs(u.addr, ck.mailboxes[u.addr], mv, fetched, v)
	return mv, nil
}

// fetchedMessage is one message of a FETCH 1:* (UID FLAGS ENVELOPE).
type fetchedMessage struct {
	seq, uid uint32
	mid      string // Message-ID without the angle brackets
	flags    []imap.Flag
}

// checkUIDs fills mv from the fetched messages and checks the UID rules
// (RFC 9051 2.3.1.1) against prev, what the last verification saw (nil
// at the first): UIDs strictly ascending in sequence order and below
// UIDNEXT; with the same UIDVALIDITY, no UID holding another message than
// before, no new message below the old UIDNEXT, UIDNEXT never lower,
// nothing seen before gone (the load never expunges). It returns the
// state for the next verification.
func checkUIDs(addr string, prev *mailboxState, mv *mailboxView, msgs []fetchedMessage, v *verdict) *mailboxState {
	slices.SortFunc(msgs, func(a, b fetchedMessage) int { return cmp.Compare(a.seq, b.seq) })
	var last uint32
	now := map[uint32]string{}
	for _, m := range msgs {
		uid, mid := m.uid, m.mid
		if uid <= last {
			v.violations++
			v.problem("UID ORDER: INBOX of %s: message %d has UID %d after UID %d", addr, m.seq, uid, last)
		}
		last = max(last, uid)
		if uid >= mv.uidNext {
			v.violations++
			v.problem("UIDNEXT: INBOX of %s: UID %d not below UIDNEXT %d", addr, uid, mv.uidNext)
		}
		now[uid] = mid
		mv.byMID[mid] = append(mv.byMID[mid], uid)
		mv.flags[uid] = m.flags
		if prev == nil || prev.uidValidity != mv.uidValidity {
			continue
		}
		if old, seen := prev.byUID[uid]; seen && old != mid {
			v.violations++
			v.problem("UID REUSED: INBOX of %s: UID %d held <%s>, now <%s>", addr, uid, old, mid)
		} else if !seen && uid < prev.uidNext {
			v.violations++
			v.problem("UID WENT BACK: INBOX of %s: new message <%s> has UID %d, below the UIDNEXT %d seen before", addr, mid, uid, prev.uidNext)
		}
	}
	if prev != nil {
		if prev.uidValidity != mv.uidValidity {
			v.violations++
			v.problem("UIDVALIDITY CHANGED: INBOX of %s: %d, was %d", addr, mv.uidValidity, prev.uidValidity)
		}
		if mv.uidNext < prev.uidNext {
			v.violations++
			v.problem("UIDNEXT WENT BACK: INBOX of %s: %d, was %d", addr, mv.uidNext, prev.uidNext)
		}
		for uid, mid := range prev.byUID {
			if _, ok := now[uid]; !ok {
				v.violations++
				v.problem("VANISHED: INBOX of %s: UID %d <%s>, seen at the last verification, is gone", addr, uid, mid)
			}
		}
	}
	return &mailboxState{uidValidity: mv.uidValidity, uidNext: mv.uidNext, byUID: now}
}

// chatMessage is the part of a history message (PROTOCOL.md 3.1) the
// check reads.
type chatMessage struct {
	Seq           int64  `json:"seq"`
	Kind          string `json:"kind"`
	Body          string `json:"body"`
	SenderAddress string `json:"senderAddress"`
}

// readRoom pages through the room's whole history with the REST API
// (GET /api/v1/chat/rooms/{id}/messages?after=) and checks the room's
// sequence: strictly increasing by one, nothing seen before changed or
// gone.
func (ck *checker) readRoom(ctx context.Context, v *verdict) (map[int64]chatMessage, error) {
	w := newWebClient(ck.t)
	if err := w.login(ctx, ck.chatAs); err != nil {
		return nil, err
	}
	msgs := map[int64]chatMessage{}
	var after, last int64
	for {
		var page struct {
			Messages []chatMessage `json:"messages"`
			More     bool          `json:"more"`
		}
		path := fmt.Sprintf("/api/v1/chat/rooms/%d/messages?after=%d&limit=200", ck.t.room, after)
		if err := w.call(ctx, http.MethodGet, path, nil, &page, http.StatusOK); err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			if last != 0 && m.Seq != last+1 {
				v.violations++
				v.problem("CHAT SEQ: room %d: seq %d follows seq %d", ck.t.room, m.Seq, last)
			}
			last = m.Seq
			msgs[m.Seq] = m
		}
		if !page.More || len(page.Messages) == 0 {
			break
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
	if last < ck.chatLast {
		v.violations++
		v.problem("CHAT SEQ WENT BACK: room %d: last seq %d, was %d", ck.t.room, last, ck.chatLast)
	}
	for seq, body := range ck.chatSeen {
		if m, ok := msgs[seq]; !ok || m.Body != body {
			v.violations++
			v.problem("CHAT CHANGED: room %d: seq %d held %q, now %q", ck.t.room, seq, body, m.Body)
		}
	}
	ck.chatLast = last
	ck.chatSeen = map[int64]string{}
	for seq, m := range msgs {
		ck.chatSeen[seq] = m.Body
	}
	return msgs, nil
}

// verifyTimeout bounds one verification: a server that stops answering
// is a failure, not a hang.
const verifyTimeout = 5 * time.Minute
