package chat

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/relais-mssante/relais/storage"
)

// DocumentReceived turns a structured document delivered to an account (a
// storage.ChangeDocumentReceived; doc.ID set) into chat: a document message
// in every patient room for the document's INS of which the recipient is a
// member, and a notification in the recipient's feed with a link that
// opens the document (issue 6, 4). It is idempotent for the room messages
// (one per document and room, whatever the retries); a retry may repeat the
// notification. Documents without an INS notify the recipient only.
func (s *Server) DocumentReceived(ctx context.Context, doc storage.DocumentRecord) error {
	if doc.ID == 0 || doc.Account == 0 {
		return fmt.Errorf("chat: document notification: %w", storage.ErrInvalid)
	}
	title := doc.Title
	if title == "" {
		title = doc.TypeDisplay
	}
	if title == "" {
		title = "document"
	}
	recipient := s.names.lookup(ctx, doc.Account)
	who := recipient.Name
	if who == "" {
		who = recipient.Address
	}
	n := storage.Notification{Account: doc.Account, Kind: storage.NotificationDocument, Document: doc.ID,
		Text: "Nouveau document : " + title}
	var firstErr error
	if doc.PatientINS != "" {
		rooms, err := s.store.RoomsByINS(ctx, doc.Account, doc.PatientINS)
		if err != nil {
			return fmt.Errorf("chat: patient rooms of a document: %w", err)
		}
		for _, r := range rooms {
			m, _, err := s.store.Post(ctx, storage.NewChatMessage{
				Room: r.ID, Sender: 0, Kind: storage.ChatDocument,
				// One message per document and room, even when retried.
				ClientID: "document:" + strconv.FormatInt(int64(doc.ID), 10),
				Body:     fmt.Sprintf("Document reçu par %s : %s", who, title),
				Attachments: []storage.ChatAttachment{{Kind: storage.AttachDocument, Document: doc.ID,
					Name: truncate(title, storage.MaxAttachmentName)}},
			})
			if err != nil {
				s.log.Error("chat: posting a document message", "err", err, "room", int64(r.ID), "document", int64(doc.ID))
				if firstErr == nil {
					firstErr = fmt.Errorf("chat: posting a document message in room %d: %w", r.ID, err)
				}
				continue
			}
			if n.Room == 0 {
				n.Room, n.Seq = r.ID, m.Seq
			}
		}
	}
	if _, err := s.store.Notify(ctx, n); err != nil {
		return fmt.Errorf("chat: document notification: %w", err)
	}
	s.audit(ctx, doc.Account, "chat.document", "document:"+strconv.FormatInt(int64(doc.ID), 10), storage.AuditOK, "")
	return firstErr
}

// notifyPosted notifies the accounts a new message mentions, and the other
// member of a direct room. Failures are logged: the message is committed.
func (s *Server) notifyPosted(ctx context.Context, sender storage.Account, m storage.ChatMessage) {
	if m.Kind != storage.ChatText {
		return
	}
	ctx = context.WithoutCancel(ctx)
	who := sender.Name
	if who == "" {
		who = sender.Address
	}
	done := map[storage.AccountID]bool{sender.ID: true}
	for _, a := range m.Mentions {
		if done[a] {
			continue
		}
		done[a] = true
		_, err := s.store.Notify(ctx, storage.Notification{Account: a, Kind: storage.NotificationMention,
			Room: m.Room, Seq: m.Seq, Text: who + " vous a mentionné"})
		if err != nil && !errors.Is(err, storage.ErrNotFound) { // not a member: no notification
			s.log.Error("chat: mention notification", "err", err, "room", int64(m.Room))
		}
	}
	r, err := s.store.Room(ctx, sender.ID, m.Room)
	if err != nil || r.Kind != storage.RoomDirect {
		return
	}
	members, err := s.store.Members(ctx, m.Room, sender.ID)
	if err != nil {
		return
	}
	for _, mb := range members {
		if done[mb.Account] {
			continue
		}
		if _, err := s.store.Notify(ctx, storage.Notification{Account: mb.Account, Kind: storage.NotificationDirect,
			Room: m.Room, Seq: m.Seq, Text: "Message de " + who}); err != nil {
			s.log.Error("chat: direct notification", "err", err, "room", int64(m.Room))
		}
	}
}

// truncate cuts s at n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
