package storage

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/storage/dirkey"
)

// The chat rules below are shared by every ChatStore implementation, so that
// a request is refused (or accepted) the same way whichever database holds
// the chat: validation, normalisation and the folding of searchable text.

// MaxChatSeq bounds the sequence numbers a store reads or writes: database
// integers are signed 64-bit, and no room gets anywhere near it. Larger
// values a caller passes are lowered to it (see ClampSeq): they name no
// event.
const MaxChatSeq = 1 << 62

// MaxChatSearchWords bounds the words of a search query (the rest are
// ignored).
const MaxChatSearchWords = 16

// ClampSeq lowers a caller's sequence number to MaxChatSeq.
func ClampSeq(seq uint64) uint64 { return min(seq, MaxChatSeq) }

// IsMessage reports whether k is a message (text, system, document), not
// an edit or a deletion.
func (k ChatKind) IsMessage() bool {
	return k == ChatText || k == ChatSystem || k == ChatDocument
}

// CheckChatText checks a name-like text: valid UTF-8, no line breaks or NUL
// (ErrInvalid), at most max bytes (ErrTooLarge).
func CheckChatText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s of %d bytes: %w", what, len(s), ErrTooLarge)
	}
	if !utf8.ValidString(s) || !PlainText(s, max) {
		return fmt.Errorf("%s: %w", what, ErrInvalid)
	}
	return nil
}

// NormINS removes white space from an INS ("2 99 99 ..." as typed): patient
// rooms are stored and looked up by this form.
func NormINS(ins string) string {
	return strings.Join(strings.Fields(ins), "")
}

// ChatLimit checks a listing's limit (at least 1, ErrInvalid otherwise) and
// lowers it to MaxChatPage.
func ChatLimit(limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("limit %d: %w", limit, ErrInvalid)
	}
	return min(limit, MaxChatPage), nil
}

// AuditLimit is AuditFilter.Limit as the stores apply it: MaxChatPage when
// it is not positive or larger.
func AuditLimit(limit int) int {
	if limit <= 0 || limit > MaxChatPage {
		return MaxChatPage
	}
	return limit
}

// CheckNewRoom validates and normalises a room to create (NormINS on its
// INS) and returns the accounts to add as RoleMember: duplicates and the
// creator removed, in the order given.
func CheckNewRoom(nr *NewRoom) ([]AccountID, error) {
	nr.PatientINS = NormINS(nr.PatientINS)
	switch nr.Kind {
	case RoomTeam:
		if nr.PatientINS != "" || nr.PatientName != "" {
			return nil, fmt.Errorf("team room with a patient: %w", ErrInvalid)
		}
	case RoomPatient:
		if nr.PatientINS == "" {
			return nil, fmt.Errorf("patient room without INS: %w", ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("kind %q: %w", nr.Kind, ErrInvalid)
	}
	if strings.TrimSpace(nr.Name) == "" {
		return nil, fmt.Errorf("empty name: %w", ErrInvalid)
	}
	for _, c := range []struct {
		what, s string
		max     int
	}{{"name", nr.Name, MaxRoomName}, {"patient name", nr.PatientName, MaxRoomName}, {"INS", nr.PatientINS, MaxINS}} {
		if err := CheckChatText(c.what, c.s, c.max); err != nil {
			return nil, err
		}
	}
	if nr.CreatedBy <= 0 {
		return nil, fmt.Errorf("no creator: %w", ErrInvalid)
	}
	var members []AccountID
	for _, m := range nr.Members {
		if m <= 0 {
			return nil, fmt.Errorf("member %d: %w", m, ErrInvalid)
		}
		if m != nr.CreatedBy && !slices.Contains(members, m) {
			members = append(members, m)
		}
		if len(members)+1 > MaxRoomMembers {
			return nil, fmt.Errorf("more than %d members: %w", MaxRoomMembers, ErrTooLarge)
		}
	}
	return members, nil
}

// CheckDirectPair validates the two accounts of a direct room and returns
// the room's key, the same whichever order they are given in ("low:high").
func CheckDirectPair(a, b AccountID) (string, error) {
	if a <= 0 || b <= 0 || a == b {
		return "", fmt.Errorf("accounts %d and %d: %w", a, b, ErrInvalid)
	}
	if a > b {
		a, b = b, a
	}
	return fmt.Sprintf("%d:%d", a, b), nil
}

// CheckRole reports ErrInvalid for a role that is not RoleOwner or
// RoleMember.
func CheckRole(role RoomRole) error {
	if role != RoleOwner && role != RoleMember {
		return fmt.Errorf("role %q: %w", role, ErrInvalid)
	}
	return nil
}

// CheckPost validates an event before its write transaction: kind, body,
// sender and target rules, sizes, mentions (duplicates removed) and
// attachments. ReplyTo and Target are clamped (ClampSeq).
func CheckPost(m *NewChatMessage) error {
	if m.Room <= 0 || m.Sender < 0 {
		return fmt.Errorf("room %d, sender %d: %w", m.Room, m.Sender, ErrInvalid)
	}
	switch m.Kind {
	case ChatText:
		if strings.TrimSpace(m.Body) == "" {
			return fmt.Errorf("empty body: %w", ErrInvalid)
		}
	case ChatSystem, ChatDocument:
	case ChatEdit:
		if strings.TrimSpace(m.Body) == "" {
			return fmt.Errorf("empty edit: %w", ErrInvalid)
		}
	case ChatDelete:
		if m.Body != "" {
			return fmt.Errorf("deletion with a body: %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("kind %q: %w", m.Kind, ErrInvalid)
	}
	if m.Sender == 0 && m.Kind != ChatSystem && m.Kind != ChatDocument {
		return fmt.Errorf("%s without a sender: %w", m.Kind, ErrInvalid)
	}
	m.ReplyTo, m.Target = ClampSeq(m.ReplyTo), ClampSeq(m.Target)
	if m.Kind.IsMessage() != (m.Target == 0) {
		return fmt.Errorf("%s with target %d: %w", m.Kind, m.Target, ErrInvalid)
	}
	if len(m.Body) > MaxChatBody {
		return fmt.Errorf("body of %d bytes: %w", len(m.Body), ErrTooLarge)
	}
	if !utf8.ValidString(m.Body) || strings.ContainsRune(m.Body, 0) {
		return fmt.Errorf("body: %w", ErrInvalid)
	}
	if err := CheckChatText("client id", m.ClientID, MaxClientID); err != nil {
		return err
	}
	if len(m.Mentions) > MaxMentions {
		return fmt.Errorf("%d mentions: %w", len(m.Mentions), ErrTooLarge)
	}
	var mentions []AccountID
	for _, a := range m.Mentions {
		if a <= 0 {
			return fmt.Errorf("mention %d: %w", a, ErrInvalid)
		}
		if !slices.Contains(mentions, a) {
			mentions = append(mentions, a)
		}
	}
	m.Mentions = mentions
	if len(m.Attachments) > MaxAttachments {
		return fmt.Errorf("%d attachments: %w", len(m.Attachments), ErrTooLarge)
	}
	for _, a := range m.Attachments {
		switch a.Kind {
		case AttachDocument:
			if a.Document <= 0 || a.Mailbox != 0 || a.UID != 0 {
				return fmt.Errorf("document attachment: %w", ErrInvalid)
			}
		case AttachMessage:
			if a.Mailbox <= 0 || a.UID == 0 || a.Document != 0 {
				return fmt.Errorf("message attachment: %w", ErrInvalid)
			}
		default:
			return fmt.Errorf("attachment kind %q: %w", a.Kind, ErrInvalid)
		}
		if err := CheckChatText("attachment name", a.Name, MaxAttachmentName); err != nil {
			return err
		}
	}
	return nil
}

// ChatSearchText is the searchable form of a message body: folded by
// dirkey.Name (lower case, no accents, words of letters and digits
// separated by single spaces).
func ChatSearchText(body string) string { return dirkey.Name(body) }

// ChatSearchWords folds a search query as ChatSearchText does and returns
// its words, at most MaxChatSearchWords; each is to be matched as a prefix
// of a word of the text, all required. None means the query has no word.
func ChatSearchWords(query string) []string {
	words := strings.Fields(ChatSearchText(query))
	if len(words) > MaxChatSearchWords {
		words = words[:MaxChatSearchWords]
	}
	return words
}

// CheckNotification validates a notification to append (kind, account,
// room and sequence, document) and cuts its Text at MaxNotificationText
// bytes; Created is set to now (to the nanosecond, UTC) and Read cleared.
func CheckNotification(n *Notification) error {
	switch n.Kind {
	case NotificationMention, NotificationDirect, NotificationDocument:
	default:
		return fmt.Errorf("kind %q: %w", n.Kind, ErrInvalid)
	}
	if n.Account <= 0 || n.Room < 0 || n.Document < 0 || (n.Room == 0 && n.Seq != 0) || n.Seq > MaxChatSeq {
		return fmt.Errorf("notification fields: %w", ErrInvalid)
	}
	n.Text = TruncateText(n.Text, MaxNotificationText)
	n.Created = time.Unix(0, time.Now().UnixNano()).UTC()
	n.Read = false
	return nil
}

// CheckAuditEntry validates an audit entry to append (Action required,
// ErrInvalid otherwise), sets a zero Time to now and cuts every text field
// at MaxAuditField bytes.
func CheckAuditEntry(e *AuditEntry) error {
	if strings.TrimSpace(e.Action) == "" {
		return fmt.Errorf("no action: %w", ErrInvalid)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	for _, f := range []*string{&e.Action, &e.Object, &e.Outcome, &e.Detail} {
		*f = TruncateText(*f, MaxAuditField)
	}
	return nil
}

// EncodePost returns what a store writes for a checked event (CheckPost)
// beside its plain fields: its mentions and attachments as JSON text (""
// when none) and its searchable text (ChatSearchText of the body, "" for a
// deletion).
func EncodePost(m *NewChatMessage) (mentions, attachments, folded string, err error) {
	if len(m.Mentions) > 0 {
		b, err := json.Marshal(m.Mentions)
		if err != nil {
			return "", "", "", fmt.Errorf("mentions: %w", err)
		}
		mentions = string(b)
	}
	if len(m.Attachments) > 0 {
		b, err := json.Marshal(m.Attachments)
		if err != nil {
			return "", "", "", fmt.Errorf("attachments: %w", err)
		}
		attachments = string(b)
	}
	if m.Kind != ChatDelete {
		folded = ChatSearchText(m.Body)
	}
	return mentions, attachments, folded, nil
}

// ChatMessageRow is an event's columns as the stores read them: times in
// unix nanoseconds (0 for none), mentions and attachments as JSON text (""
// when none), and TargetDeleted, the deletion time of the message an edit
// or deletion points at (0 when none).
type ChatMessageRow struct {
	Room, Sender                                int64
	Seq, ReplyTo, Target                        uint64
	ClientID, Kind, Body, Mentions, Attachments string
	Created, Edited, Deleted, TargetDeleted     int64
}

// Dest returns pointers to r's fields for a row's Scan, in this order:
// room, seq, client_id, sender, kind, body, reply_to, target, mentions,
// attachments, created, edited, deleted, the target's deleted.
func (r *ChatMessageRow) Dest() []any {
	return []any{&r.Room, &r.Seq, &r.ClientID, &r.Sender, &r.Kind, &r.Body, &r.ReplyTo, &r.Target, &r.Mentions,
		&r.Attachments, &r.Created, &r.Edited, &r.Deleted, &r.TargetDeleted}
}

// Message decodes r. The body of a deleted message, and of an edit whose
// target is deleted, is hidden ("").
func (r *ChatMessageRow) Message() (ChatMessage, error) {
	m := ChatMessage{Room: RoomID(r.Room), Seq: r.Seq, ClientID: r.ClientID, Sender: AccountID(r.Sender),
		Kind: ChatKind(r.Kind), Body: r.Body, ReplyTo: r.ReplyTo, Target: r.Target,
		Created: time.Unix(0, r.Created).UTC(), Edited: TimeOrZero(r.Edited), Deleted: TimeOrZero(r.Deleted)}
	if r.Deleted != 0 || (m.Kind == ChatEdit && r.TargetDeleted != 0) {
		m.Body = ""
	}
	if r.Mentions != "" {
		if err := json.Unmarshal([]byte(r.Mentions), &m.Mentions); err != nil {
			return m, fmt.Errorf("message %d/%d mentions: %w", m.Room, m.Seq, err)
		}
	}
	if r.Attachments != "" {
		if err := json.Unmarshal([]byte(r.Attachments), &m.Attachments); err != nil {
			return m, fmt.Errorf("message %d/%d attachments: %w", m.Room, m.Seq, err)
		}
	}
	return m, nil
}

// ChatTarget is the message an edit, a deletion or a reply points at.
type ChatTarget struct {
	ID      int64 // the store's row id
	Sender  AccountID
	Kind    ChatKind
	Deleted bool
}

// NewChatTarget builds the target seq of room from its columns (deleted in
// unix nanoseconds, 0 when not deleted): ErrNotFound when that event is
// not a message (an edit or a deletion cannot be pointed at).
func NewChatTarget(room RoomID, seq uint64, id, sender int64, kind string, deleted int64) (ChatTarget, error) {
	t := ChatTarget{ID: id, Sender: AccountID(sender), Kind: ChatKind(kind), Deleted: deleted != 0}
	if !t.Kind.IsMessage() {
		return t, fmt.Errorf("event %d of room %d is not a message: %w", seq, room, ErrNotFound)
	}
	return t, nil
}

// CheckChatTarget reports ErrForbidden when m, sent by a member of role,
// may not act on its target t: a deleted message is final, only its sender
// edits a text message, and its sender or an owner deletes it.
func CheckChatTarget(m *NewChatMessage, role RoomRole, t ChatTarget) error {
	switch {
	case t.Deleted:
		return fmt.Errorf("message %d is deleted: %w", m.Target, ErrForbidden)
	case m.Kind == ChatEdit && (t.Kind != ChatText || t.Sender != m.Sender):
		return fmt.Errorf("editing message %d: %w", m.Target, ErrForbidden)
	case m.Kind == ChatDelete && t.Sender != m.Sender && role != RoleOwner:
		return fmt.Errorf("deleting message %d: %w", m.Target, ErrForbidden)
	}
	return nil
}

// PostedMessage returns what Post returns for m, stored as event seq at
// now (unix nanoseconds), and the change it publishes to the room.
func PostedMessage(m *NewChatMessage, seq uint64, now int64) (ChatMessage, Change) {
	out := ChatMessage{Room: m.Room, Seq: seq, ClientID: m.ClientID, Sender: m.Sender, Kind: m.Kind,
		Body: m.Body, ReplyTo: m.ReplyTo, Target: m.Target, Mentions: m.Mentions, Attachments: m.Attachments,
		Created: time.Unix(0, now).UTC()}
	return out, Change{Kind: ChangeChat, Room: m.Room, Seq: seq, Chat: ChatChangeEvent, Account: m.Sender}
}

// ChatBefore is the bound MessagesBefore reads below: before clamped
// (ClampSeq), and MaxChatSeq for 0 (the latest events).
func ChatBefore(before uint64) uint64 {
	if before == 0 {
		return MaxChatSeq
	}
	return ClampSeq(before)
}

// PostTarget checks the events m points at, read with lookup (the target
// of event seq of m's room, as NewChatTarget builds it): its ReplyTo must
// be a message, and its Target one that m, sent by a member of role, may
// act on (CheckChatTarget). It returns the target (zero without one).
func PostTarget(m *NewChatMessage, role RoomRole, lookup func(seq uint64) (ChatTarget, error)) (ChatTarget, error) {
	if m.ReplyTo != 0 {
		if _, err := lookup(m.ReplyTo); err != nil {
			return ChatTarget{}, err
		}
	}
	if m.Target == 0 {
		return ChatTarget{}, nil
	}
	t, err := lookup(m.Target)
	if err != nil {
		return ChatTarget{}, err
	}
	if err := CheckChatTarget(m, role, t); err != nil {
		return ChatTarget{}, err
	}
	return t, nil
}

// CheckNewMember checks AddMember's arguments: a role (CheckRole) and an
// account id (ErrInvalid when not positive).
func CheckNewMember(role RoomRole, acct AccountID) error {
	if err := CheckRole(role); err != nil {
		return err
	}
	if acct <= 0 {
		return fmt.Errorf("account %d: %w", acct, ErrInvalid)
	}
	return nil
}

// CheckMembersChange reports ErrForbidden when r's members cannot change
// (a direct room has its two for good).
func CheckMembersChange(r Room) error {
	if r.Kind == RoomDirect {
		return fmt.Errorf("room %d is direct: %w", r.ID, ErrForbidden)
	}
	return nil
}

// CheckRoomSize reports ErrTooLarge when room, with n members, has no place
// for another (MaxRoomMembers).
func CheckRoomSize(room RoomID, n int64) error {
	if n >= MaxRoomMembers {
		return fmt.Errorf("room %d has %d members: %w", room, n, ErrTooLarge)
	}
	return nil
}

// MemberChange is the change published when acct joins or leaves room,
// whose last event is seq.
func MemberChange(room RoomID, seq uint64, acct AccountID) Change {
	return Change{Kind: ChangeChat, Room: room, Seq: seq, Chat: ChatChangeMember, Account: acct}
}

// CheckChatSearch checks SearchMessages' arguments: the limit (ChatLimit),
// the query's size (ErrTooLarge above MaxChatBody) and its words
// (ChatSearchWords; ErrInvalid when it has none). It returns the words and
// the limit to apply.
func CheckChatSearch(query string, limit int) ([]string, int, error) {
	limit, err := ChatLimit(limit)
	if err != nil {
		return nil, 0, err
	}
	if len(query) > MaxChatBody {
		return nil, 0, fmt.Errorf("query of %d bytes: %w", len(query), ErrTooLarge)
	}
	words := ChatSearchWords(query)
	if len(words) == 0 {
		return nil, 0, fmt.Errorf("no word in query: %w", ErrInvalid)
	}
	return words, limit, nil
}

// NotificationRow is a notification's columns as the stores read them
// (Created in unix nanoseconds).
type NotificationRow struct {
	ID, Room, Document, Created int64
	Seq                         uint64
	Kind, Text                  string
	Read                        bool
}

// Dest returns pointers to r's fields for a row's Scan, in this order: id,
// kind, room, seq, document, text, created, read.
func (r *NotificationRow) Dest() []any {
	return []any{&r.ID, &r.Kind, &r.Room, &r.Seq, &r.Document, &r.Text, &r.Created, &r.Read}
}

// Notification decodes r, a notification of acct.
func (r *NotificationRow) Notification(acct AccountID) Notification {
	return Notification{ID: NotificationID(r.ID), Account: acct, Kind: NotificationKind(r.Kind), Room: RoomID(r.Room),
		Seq: r.Seq, Document: DocumentID(r.Document), Text: r.Text, Created: time.Unix(0, r.Created).UTC(), Read: r.Read}
}

// NewChatRevision builds a version of a message from its columns (created
// in unix nanoseconds).
func NewChatRevision(seq uint64, kind string, sender int64, body string, created int64) ChatRevision {
	return ChatRevision{Seq: seq, Kind: ChatKind(kind), Sender: AccountID(sender), Body: body, Time: time.Unix(0, created).UTC()}
}

// ReadMarkerTo is where SetReadMarker moves a marker at cur when asked for
// seq in a room whose last event is last: never past last, and only
// forward (move is false when the marker stays).
func ReadMarkerTo(seq, cur, last uint64) (to uint64, move bool) {
	to = min(seq, last)
	return to, to > cur
}

// ReadChange is the change published when acct's read marker in room
// moves to seq.
func ReadChange(room RoomID, seq uint64, acct AccountID) Change {
	return Change{Kind: ChangeChat, Room: room, Seq: seq, Chat: ChatChangeRead, Account: acct}
}

// NotificationChange is the change published to n's account when n is
// appended.
func NotificationChange(n Notification) Change {
	return Change{Kind: ChangeChatNotification, Room: n.Room, Seq: n.Seq, Notification: n.ID}
}
