package storage

import (
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
