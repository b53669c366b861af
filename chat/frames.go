package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// ProtocolVersion is the version hello must ask for (PROTOCOL.md).
const ProtocolVersion = 1

// Error codes of error frames and REST errors (PROTOCOL.md 2.3).
const (
	CodeBadRequest         = "bad_request"
	CodeUnsupportedVersion = "unsupported_version"
	CodeInvalidUTF8        = "invalid_utf8"
	CodeTooLarge           = "too_large"
	CodeFrameTooLarge      = "frame_too_large"
	CodeRateLimited        = "rate_limited"
	CodeNotFound           = "not_found"
	CodeForbidden          = "forbidden"
	CodeInternal           = "internal"
	CodeUnauthorized       = "unauthorized"
)

// inFrame is any client frame; which fields matter depends on Type.
type inFrame struct {
	Type        string              `json:"type"`
	ID          string              `json:"id,omitempty"`
	V           int                 `json:"v,omitempty"`
	Rooms       json.RawMessage     `json:"rooms,omitempty"` // subscribe: object; unsubscribe: array
	Room        storage.RoomID      `json:"room,omitempty"`
	ClientID    string              `json:"clientId,omitempty"`
	Body        string              `json:"body,omitempty"`
	ReplyTo     uint64              `json:"replyTo,omitempty"`
	Target      uint64              `json:"target,omitempty"`
	Mentions    []storage.AccountID `json:"mentions,omitempty"`
	Attachments []attachmentJSON    `json:"attachments,omitempty"`
	Seq         uint64              `json:"seq,omitempty"`
}

// subscribeRooms parses subscribe's {"<room>": lastSeq} object.
func (f *inFrame) subscribeRooms(max int) (map[storage.RoomID]uint64, error) {
	var raw map[string]uint64
	if err := json.Unmarshal(f.Rooms, &raw); err != nil {
		return nil, fmt.Errorf("rooms must be an object of room id to last seq")
	}
	if len(raw) > max {
		return nil, fmt.Errorf("at most %d rooms per subscribe", max)
	}
	out := make(map[storage.RoomID]uint64, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("room ids are positive integers")
		}
		out[storage.RoomID(id)] = v
	}
	return out, nil
}

func (f *inFrame) unsubscribeRooms() ([]storage.RoomID, error) {
	var ids []storage.RoomID
	if err := json.Unmarshal(f.Rooms, &ids); err != nil {
		return nil, fmt.Errorf("rooms must be an array of room ids")
	}
	return ids, nil
}

type accountJSON struct {
	ID      storage.AccountID `json:"id"`
	Address string            `json:"address"`
	Name    string            `json:"name"`
}

type limitsJSON struct {
	MaxBody       int     `json:"maxBody"`
	MaxFrame      int64   `json:"maxFrame"`
	RatePerSecond float64 `json:"ratePerSecond"`
	Burst         int     `json:"burst"`
	Replay        int     `json:"replay"`
}

type attachmentJSON struct {
	Kind     string             `json:"kind"`
	Document storage.DocumentID `json:"document,omitempty"`
	Mailbox  storage.MailboxID  `json:"mailbox,omitempty"`
	UID      uint32             `json:"uid,omitempty"`
	Title    string             `json:"title,omitempty"`
	Link     string             `json:"link,omitempty"`
}

// messageJSON is PROTOCOL.md 3.1.
type messageJSON struct {
	Room          storage.RoomID      `json:"room"`
	Seq           uint64              `json:"seq"`
	Kind          storage.ChatKind    `json:"kind"`
	Sender        storage.AccountID   `json:"sender"`
	SenderAddress string              `json:"senderAddress,omitempty"`
	SenderName    string              `json:"senderName,omitempty"`
	ClientID      string              `json:"clientId,omitempty"`
	Body          string              `json:"body"`
	ReplyTo       uint64              `json:"replyTo,omitempty"`
	Mentions      []storage.AccountID `json:"mentions,omitempty"`
	Attachments   []attachmentJSON    `json:"attachments,omitempty"`
	Target        uint64              `json:"target,omitempty"`
	Created       string              `json:"created"`
	Edited        string              `json:"edited,omitempty"`
	Deleted       bool                `json:"deleted"`
}

// notificationJSON is PROTOCOL.md 3.3.
type notificationJSON struct {
	ID       storage.NotificationID   `json:"id"`
	Kind     storage.NotificationKind `json:"kind"`
	Room     storage.RoomID           `json:"room,omitempty"`
	Seq      uint64                   `json:"seq,omitempty"`
	Document storage.DocumentID       `json:"document,omitempty"`
	Text     string                   `json:"text"`
	Link     string                   `json:"link,omitempty"`
	Created  string                   `json:"created"`
	Read     bool                     `json:"read"`
}

// outFrame is any server frame.
type outFrame struct {
	Type         string            `json:"type"`
	V            int               `json:"v,omitempty"`
	Account      any               `json:"account,omitempty"`
	Address      string            `json:"address,omitempty"`
	Name         string            `json:"name,omitempty"`
	Heartbeat    int               `json:"heartbeat,omitempty"`
	Limits       *limitsJSON       `json:"limits,omitempty"`
	Room         storage.RoomID    `json:"room,omitempty"`
	Seq          uint64            `json:"seq,omitempty"`
	LastSeq      *uint64           `json:"lastSeq,omitempty"`
	Target       uint64            `json:"target,omitempty"`
	ClientID     string            `json:"clientId,omitempty"`
	Duplicate    bool              `json:"duplicate,omitempty"`
	Message      *messageJSON      `json:"message,omitempty"`
	Notification *notificationJSON `json:"notification,omitempty"`
	Action       string            `json:"action,omitempty"`
	Role         storage.RoomRole  `json:"role,omitempty"`
	Online       *bool             `json:"online,omitempty"`
	Code         string            `json:"code,omitempty"`
	Ref          string            `json:"ref,omitempty"`
}

// errorFrame is {"type":"error", code, message, ref, room}.
type errorFrame struct {
	Type    string         `json:"type"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Ref     string         `json:"ref,omitempty"`
	Room    storage.RoomID `json:"room,omitempty"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded: a failure is a bug.
		panic(fmt.Sprintf("chat: encoding a frame: %v", err))
	}
	return b
}

func errFrame(code, msg, ref string, room storage.RoomID) []byte {
	return encode(errorFrame{Type: "error", Code: code, Message: msg, Ref: ref, Room: room})
}

func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func documentLink(id storage.DocumentID) string {
	return "/documents/" + strconv.FormatInt(int64(id), 10)
}

// eventType is the frame type of a room event.
func eventType(k storage.ChatKind) string {
	switch k {
	case storage.ChatEdit:
		return "edit"
	case storage.ChatDelete:
		return "delete"
	default:
		return "message"
	}
}

// names resolves account ids to addresses and names for display. An
// account's address never changes, so caching it is safe (membership is
// never cached).
type names struct {
	store Store
	mu    sync.Mutex
	m     map[storage.AccountID]storage.Account
	last  time.Time
}

func (n *names) lookup(ctx context.Context, id storage.AccountID) storage.Account {
	if id == 0 {
		return storage.Account{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.m[id]; ok {
		return a
	}
	// Reload at most once a second: an unknown id (a deleted account)
	// must not make every lookup list every account.
	if time.Since(n.last) < time.Second && n.m != nil {
		return storage.Account{ID: id}
	}
	n.last = time.Now()
	accts, err := n.store.Accounts(ctx)
	if err != nil {
		return storage.Account{ID: id}
	}
	m := make(map[storage.AccountID]storage.Account, len(accts))
	for _, a := range accts {
		m[a.ID] = storage.Account{ID: a.ID, Address: a.Address, Name: a.Name}
	}
	n.m = m
	if a, ok := m[id]; ok {
		return a
	}
	return storage.Account{ID: id}
}

// remember adds an account seen elsewhere (an authenticated user).
func (n *names) remember(a storage.Account) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = make(map[storage.AccountID]storage.Account)
	}
	n.m[a.ID] = storage.Account{ID: a.ID, Address: a.Address, Name: a.Name}
}

// messageView is the JSON of a stored event; the client id is shown to its
// sender only.
func (s *Server) messageView(ctx context.Context, m storage.ChatMessage, viewer storage.AccountID) *messageJSON {
	v := &messageJSON{
		Room: m.Room, Seq: m.Seq, Kind: m.Kind, Sender: m.Sender, Body: m.Body,
		ReplyTo: m.ReplyTo, Mentions: m.Mentions, Target: m.Target,
		Created: timeJSON(m.Created), Edited: timeJSON(m.Edited), Deleted: !m.Deleted.IsZero(),
	}
	if m.Sender != 0 {
		a := s.names.lookup(ctx, m.Sender)
		v.SenderAddress, v.SenderName = a.Address, a.Name
	}
	if m.Sender == viewer {
		v.ClientID = m.ClientID
	}
	for _, a := range m.Attachments {
		j := attachmentJSON{Kind: a.Kind, Document: a.Document, Mailbox: a.Mailbox, UID: a.UID, Title: a.Name}
		if a.Kind == storage.AttachDocument && a.Document != 0 {
			j.Link = documentLink(a.Document)
		}
		v.Attachments = append(v.Attachments, j)
	}
	return v
}

func notificationView(n storage.Notification) *notificationJSON {
	v := &notificationJSON{
		ID: n.ID, Kind: n.Kind, Room: n.Room, Seq: n.Seq, Document: n.Document,
		Text: n.Text, Created: timeJSON(n.Created), Read: n.Read,
	}
	switch {
	case n.Document != 0:
		v.Link = documentLink(n.Document)
	case n.Room != 0:
		v.Link = fmt.Sprintf("/chat/#room=%d&seq=%d", n.Room, n.Seq)
	}
	return v
}
