package storage

import (
	"context"
	"time"
)

// The care-coordination chat (issue 6): rooms (team rooms, patient rooms
// around one patient's INS, direct conversations), their members, messages
// with a per-room sequence number, read markers, the per-account
// notification feed, and the audit log.
//
// Sequence numbers: every event of a room (a message, an edit, a deletion)
// gets the next sequence number of that room in the transaction that stores
// it, so a room's events are numbered 1, 2, 3... with no gap and in commit
// order. Edits and deletions are events of their own: the message they
// change keeps its sequence number, shows its current body and its Edited
// and Deleted times, and its earlier bodies stay readable by members through
// MessageHistory (a deletion is an edit that keeps the history: the exchange
// is part of the medical record).
//
// Scoping: every read takes the reading account; a room the account is not
// a member of and a room that does not exist are the same ErrNotFound, so no
// call tells a non-member that a room exists. Membership is read in the same
// transaction as the data, so a removal takes effect at once.
//
// Feed: after each commit that adds an event, moves a read marker or changes
// the members of a room, a ChangeChat is published on the feed of every
// member of the room (and of a member just removed); after Notify, a
// ChangeChatNotification on the notified account's feed.

// RoomID identifies a chat room; NotificationID an entry of an account's
// notification feed; AuditID an audit log entry.
type (
	RoomID         int64
	NotificationID int64
	AuditID        int64
)

// RoomKind is what a room is for.
type RoomKind string

const (
	RoomTeam RoomKind = "team" // a team (an MSP, a DAC, a ward)
	// RoomPatient is a "cercle de soins": the care team around one patient
	// (the ANS FHIR CareTeam idea), tied to the patient's INS.
	RoomPatient RoomKind = "patient"
	// RoomDirect is a conversation between exactly two accounts, one per
	// pair (see DirectRoom).
	RoomDirect RoomKind = "direct"
)

// RoomRole is a member's role in a room.
type RoomRole string

const (
	RoleOwner  RoomRole = "owner"
	RoleMember RoomRole = "member"
)

// ChatKind is the kind of a room event.
type ChatKind string

const (
	ChatText     ChatKind = "text"     // a member's message
	ChatSystem   ChatKind = "system"   // written by Relais (Sender 0) or on a member's action
	ChatDocument ChatKind = "document" // announces a structured document (Attachments name it)
	// ChatEdit replaces the Body of the message Target (its sender only).
	ChatEdit ChatKind = "edit"
	// ChatDelete marks the message Target deleted (its sender or a room
	// owner); its bodies stay in MessageHistory.
	ChatDelete ChatKind = "delete"
)

// Attachment kinds.
const (
	AttachDocument = "document" // a structured document: Document
	AttachMessage  = "message"  // a mail message: Mailbox and UID
)

// Limits every implementation enforces (ErrTooLarge for bodies, texts and
// counts over them, ErrInvalid for empty required fields).
const (
	MaxChatBody         = 16 << 10 // bytes of a message body
	MaxRoomName         = 200      // bytes of a room name or patient name
	MaxINS              = 64       // bytes of a patient INS
	MaxRoomMembers      = 500      // members of one room
	MaxClientID         = 128      // bytes of a client id
	MaxMentions         = 100      // mentions in one message
	MaxAttachments      = 20       // attachments in one message
	MaxAttachmentName   = 500      // bytes of an attachment's label
	MaxNotificationText = 1024     // bytes; longer texts are cut, not refused
	MaxAuditField       = 4096     // bytes of an audit field; longer ones are cut
	MaxChatPage         = 1000     // the largest limit of a listing; larger limits are lowered
)

// Room is a chat room.
type Room struct {
	ID          RoomID
	Kind        RoomKind
	Name        string // "" for direct rooms
	PatientINS  string // RoomPatient only: the INS (NIR or NIA) as written, white space removed
	PatientName string // RoomPatient only: for display
	Created     time.Time
	CreatedBy   AccountID
	LastSeq     uint64 // the sequence number of the room's latest event, 0 when none
}

// NewRoom is a team or patient room to create (direct rooms come from
// DirectRoom). The creator becomes its owner; Members are added as
// RoleMember in the same transaction (duplicates and the creator ignored).
type NewRoom struct {
	Kind        RoomKind // RoomTeam or RoomPatient
	Name        string   // required, at most MaxRoomName bytes
	PatientINS  string   // required for RoomPatient, empty otherwise
	PatientName string   // RoomPatient only
	CreatedBy   AccountID
	Members     []AccountID
}

// RoomMember is one member of a room.
type RoomMember struct {
	Room    RoomID
	Account AccountID
	Role    RoomRole
	AddedBy AccountID // 0 for the creator
	Added   time.Time
}

// RoomSummary is one line of an account's room list.
type RoomSummary struct {
	Room
	Role       RoomRole
	ReadSeq    uint64    // the account's read marker
	Unread     int       // see UnreadCounts
	LastActive time.Time // when the latest event was added, Created when none
}

// ChatAttachment links a message to something stored in Relais. The store
// checks its shape only; who may open it is decided when it is opened.
type ChatAttachment struct {
	Kind     string     // AttachDocument or AttachMessage
	Document DocumentID // AttachDocument
	Mailbox  MailboxID  // AttachMessage: a mailbox of the sender
	UID      uint32     // AttachMessage
	Name     string     // label for display (a title, a subject), may be ""
}

// NewChatMessage is an event to add to a room.
type NewChatMessage struct {
	Room RoomID
	// Sender must be a member of the room; 0 means Relais itself and is
	// allowed only with ChatSystem and ChatDocument.
	Sender AccountID
	// ClientID is the sender's idempotency key (at most MaxClientID
	// bytes): a second event with the same (Room, Sender, ClientID) stores
	// nothing and returns the first one. "" disables the check.
	ClientID    string
	Kind        ChatKind
	Body        string // at most MaxChatBody bytes; required for text and edit, empty for delete
	ReplyTo     uint64 // a message of the room being answered, 0 for none
	Target      uint64 // ChatEdit and ChatDelete: the message changed
	Mentions    []AccountID
	Attachments []ChatAttachment
}

// ChatMessage is one event of a room. For a message (text, system,
// document) Body is its current body ("" once deleted) and Edited/Deleted
// tell whether and when it changed; for an edit event Body is the body it set
// ("" once the target is deleted); a delete event has no body.
type ChatMessage struct {
	Room        RoomID
	Seq         uint64
	ClientID    string
	Sender      AccountID
	Kind        ChatKind
	Body        string
	ReplyTo     uint64
	Target      uint64
	Mentions    []AccountID
	Attachments []ChatAttachment
	Created     time.Time
	Edited      time.Time // the latest edit, zero if never edited
	Deleted     time.Time // zero unless deleted
}

// ChatRevision is one version of a message: the original, each edit, then
// the deletion if any.
type ChatRevision struct {
	Seq    uint64 // the message's own Seq for the original, the event's for the others
	Kind   ChatKind
	Sender AccountID
	Body   string // "" for the deletion
	Time   time.Time
}

// ReadMarker is how far one member has read a room.
type ReadMarker struct {
	Account AccountID
	Seq     uint64
	Updated time.Time
}

// NotificationKind says why an account is notified.
type NotificationKind string

const (
	NotificationMention  NotificationKind = "mention"
	NotificationDirect   NotificationKind = "direct"
	NotificationDocument NotificationKind = "document"
)

// Notification is one entry of an account's notification feed.
type Notification struct {
	ID       NotificationID // assigned by Notify, increasing
	Account  AccountID
	Kind     NotificationKind
	Room     RoomID     // 0 when none
	Seq      uint64     // 0 when none
	Document DocumentID // NotificationDocument: the document to open, else 0
	Text     string     // short text for display, cut at MaxNotificationText bytes
	Created  time.Time
	Read     bool
}

// Audit outcomes.
const (
	AuditOK     = "ok"
	AuditDenied = "denied" // a refusal (not a member, not allowed, rate limited)
	AuditError  = "error"
)

// AuditEntry is one line of the append-only audit log: who did (or tried)
// what on which object. Never a message body, a password or a key; the
// object is an identifier ("room:12", "document:7"), not a patient name.
type AuditEntry struct {
	ID      AuditID   // assigned by AppendAudit, increasing
	Time    time.Time // zero in AppendAudit means now
	Account AccountID // 0 when unauthenticated or Relais itself
	Action  string    // required: "chat.read", "chat.send", "document.open"...
	Object  string
	Outcome string // AuditOK, AuditDenied, AuditError
	Detail  string
}

// AuditFilter selects audit entries; zero fields do not filter.
type AuditFilter struct {
	Account AccountID
	Action  string // exact
	Outcome string // exact
	Since   time.Time
	Until   time.Time // exclusive
	AfterID AuditID   // entries with a larger id only (paging)
	Limit   int       // <= 0 or over MaxChatPage: MaxChatPage
}

// AuditStore is the append-only audit log.
type AuditStore interface {
	// AppendAudit appends an entry durably (Action required, ErrInvalid
	// otherwise; fields longer than MaxAuditField bytes are cut) and
	// returns its id. Entries are never changed or removed.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditID, error)
	// Audit returns matching entries in id order (oldest first).
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// ChatStore keeps the chat. Every mutating method commits durably before it
// returns nil, then publishes on the feed (see above). Listings take a limit
// (at least 1, ErrInvalid otherwise; above MaxChatPage it is lowered).
type ChatStore interface {
	// CreateRoom creates a team or patient room (see NewRoom). Unknown
	// accounts are ErrNotFound, more than MaxRoomMembers ErrTooLarge.
	CreateRoom(ctx context.Context, r NewRoom) (Room, error)
	// DirectRoom returns the direct room of a and b, creating it (both
	// plain members: no owner, so neither deletes the other's messages
	// and nobody is added) if there is none: one per pair, whichever
	// order the pair is given in. a == b is ErrInvalid.
	DirectRoom(ctx context.Context, a, b AccountID) (Room, error)
	// Room returns a room acct is a member of (ErrNotFound otherwise).
	Room(ctx context.Context, acct AccountID, id RoomID) (Room, error)
	// Rooms lists acct's rooms, most recent activity (LastSeq's event,
	// else creation) first.
	Rooms(ctx context.Context, acct AccountID) ([]RoomSummary, error)
	// RoomsByINS lists the patient rooms for ins (white space ignored)
	// that acct is a member of, by id.
	RoomsByINS(ctx context.Context, acct AccountID, ins string) ([]Room, error)

	// AddMember adds acct to the room with role, on behalf of by, who must
	// be a member (ErrNotFound otherwise, as for a missing room); whether by
	// may do it (an owner, say) is the caller's decision. Already a member
	// is ErrExists, an unknown account ErrNotFound, a direct room
	// ErrForbidden, a full room ErrTooLarge.
	AddMember(ctx context.Context, room RoomID, by, acct AccountID, role RoomRole) error
	// RemoveMember removes acct on behalf of by (a member; by == acct is
	// leaving). Not a member is ErrNotFound, a direct room ErrForbidden.
	// The removed account's read marker goes with it.
	RemoveMember(ctx context.Context, room RoomID, by, acct AccountID) error
	// Members lists the members by account id; acct must be one.
	Members(ctx context.Context, room RoomID, acct AccountID) ([]RoomMember, error)
	// IsMember is an index lookup, cheap enough for every fan-out. A
	// missing room is false, nil.
	IsMember(ctx context.Context, room RoomID, acct AccountID) (bool, error)
	// MemberRole returns acct's role in the room (ErrNotFound when not a
	// member).
	MemberRole(ctx context.Context, room RoomID, acct AccountID) (RoomRole, error)

	// Post adds an event to a room and returns it with its Seq, or, for a
	// retry (same Room, Sender and ClientID), the stored event and
	// duplicate true (after the membership check, nothing else is checked
	// or stored then). A sender
	// that is not a member and a missing room are ErrNotFound; a ReplyTo or
	// Target that is not a message of the room ErrNotFound; editing
	// someone else's message, a system or document message, or a deleted
	// message ErrForbidden, and so is deleting one unless the sender is the
	// author or an owner; a body over MaxChatBody ErrTooLarge.
	Post(ctx context.Context, m NewChatMessage) (msg ChatMessage, duplicate bool, err error)
	// Message returns one event of the room (ErrNotFound).
	Message(ctx context.Context, room RoomID, acct AccountID, seq uint64) (ChatMessage, error)
	// MessagesAfter returns the events with Seq > after, in Seq order, at
	// most limit (replay after a reconnection: after = the last Seq seen).
	MessagesAfter(ctx context.Context, room RoomID, acct AccountID, after uint64, limit int) ([]ChatMessage, error)
	// MessagesBefore returns the last limit events with Seq < before (0:
	// the latest events), in Seq order (infinite scroll backwards).
	MessagesBefore(ctx context.Context, room RoomID, acct AccountID, before uint64, limit int) ([]ChatMessage, error)
	// MessageHistory returns every version of a message (ChatRevision),
	// including the bodies of a deleted one.
	MessageHistory(ctx context.Context, room RoomID, acct AccountID, seq uint64) ([]ChatRevision, error)
	// SearchMessages finds the messages (text, system, document; not
	// deleted, current bodies) of the rooms acct is a member of that
	// contain every word of query, case- and accent-insensitively, each
	// word as a prefix ("hop" finds "Hôpital"), newest first, at most
	// limit. A query without a word is ErrInvalid.
	SearchMessages(ctx context.Context, acct AccountID, query string, limit int) ([]ChatMessage, error)

	// SetReadMarker moves acct's read marker of the room forward to seq
	// (capped at the room's LastSeq) and returns the marker now stored: a
	// lower seq changes nothing and publishes nothing.
	SetReadMarker(ctx context.Context, room RoomID, acct AccountID, seq uint64) (uint64, error)
	// ReadMarkers returns every member's marker (0 for those who read
	// nothing) by account id; acct must be a member.
	ReadMarkers(ctx context.Context, room RoomID, acct AccountID) ([]ReadMarker, error)
	// UnreadCounts counts, for each of acct's rooms, the messages (text,
	// system, document; not edits, deletions or deleted messages) after
	// acct's marker that acct did not send. Rooms with none are absent.
	UnreadCounts(ctx context.Context, acct AccountID) (map[RoomID]int, error)

	// Notify appends to n.Account's notification feed (ID, Created and
	// Read assigned; Text cut at MaxNotificationText) and publishes a
	// ChangeChatNotification there. An unknown account is ErrNotFound, and
	// so are a Room the account is not a member of and a Document that is
	// not the account's (the link opens the account's own copy).
	Notify(ctx context.Context, n Notification) (Notification, error)
	// Notifications returns acct's notifications with ID > after, oldest
	// first, at most limit.
	Notifications(ctx context.Context, acct AccountID, after NotificationID, limit int) ([]Notification, error)
	// UnreadNotifications counts acct's notifications not marked read.
	UnreadNotifications(ctx context.Context, acct AccountID) (int, error)
	// MarkNotificationsRead marks acct's notifications with ID <= upTo read.
	MarkNotificationsRead(ctx context.Context, acct AccountID, upTo NotificationID) error

	AuditStore
}
