package chat

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/relais-mssante/relais/storage"
)

// opError is a refusal as the client sees it: a protocol code, a short
// English text, and the HTTP status for the REST surface. It never carries
// a patient's name, an INS or a message body.
type opError struct {
	status int
	code   string
	msg    string
}

func (e *opError) Error() string { return e.code + ": " + e.msg }

var (
	errNotFound    = &opError{http.StatusNotFound, CodeNotFound, "no such room"}
	errForbidden   = &opError{http.StatusForbidden, CodeForbidden, "not allowed"}
	errRateLimited = &opError{http.StatusTooManyRequests, CodeRateLimited, "too many messages: retry later with the same clientId"}
	errInternal    = &opError{http.StatusInternalServerError, CodeInternal, "internal error"}
)

// storeError maps a store error to what the client sees, in one place, and
// audits refusals.
func (s *Server) storeError(ctx context.Context, acct storage.AccountID, action string, room storage.RoomID, err error) *opError {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.refuse(ctx, acct, action, room, "not found or not a member")
		return errNotFound
	case errors.Is(err, storage.ErrForbidden):
		s.refuse(ctx, acct, action, room, "forbidden")
		return errForbidden
	case errors.Is(err, storage.ErrTooLarge):
		return &opError{http.StatusRequestEntityTooLarge, CodeTooLarge, "too large"}
	case errors.Is(err, storage.ErrInvalid):
		return &opError{http.StatusBadRequest, CodeBadRequest, "invalid request"}
	case errors.Is(err, storage.ErrExists):
		return &opError{http.StatusConflict, CodeBadRequest, "already exists"}
	case errors.Is(err, context.Canceled):
		return errInternal
	}
	s.log.Error("chat: storage", "err", err, "action", action, "room", int64(room))
	return errInternal
}

// postMessage commits a client's send, edit or delete (rate-limited, its
// attachments checked), then notifies mentions and direct rooms. A retry of
// a committed clientId returns the stored event with dup true.
func (s *Server) postMessage(ctx context.Context, acct storage.Account, nm storage.NewChatMessage) (storage.ChatMessage, bool, *opError) {
	nm.Sender = acct.ID
	if !s.rate.allow(acct.ID) {
		s.audit(ctx, acct.ID, "chat.send", roomObject(nm.Room), storage.AuditDenied, "rate limited")
		return storage.ChatMessage{}, false, errRateLimited
	}
	for i, a := range nm.Attachments {
		name, err := s.checkAttachment(ctx, acct.ID, a)
		if err != nil {
			return storage.ChatMessage{}, false, s.storeError(ctx, acct.ID, "chat.attach", nm.Room, err)
		}
		nm.Attachments[i].Name = name
	}
	m, dup, err := s.store.Post(ctx, nm)
	if err != nil {
		return storage.ChatMessage{}, false, s.storeError(ctx, acct.ID, "chat.send", nm.Room, err)
	}
	if !dup {
		s.notifyPosted(ctx, acct, m)
	}
	return m, dup, nil
}

// checkAttachment makes sure the sender owns what it attaches, and returns
// its label.
func (s *Server) checkAttachment(ctx context.Context, acct storage.AccountID, a storage.ChatAttachment) (string, error) {
	switch a.Kind {
	case storage.AttachDocument:
		d, err := s.store.Document(ctx, acct, a.Document)
		if err != nil {
			return "", err
		}
		return d.Title, nil
	case storage.AttachMessage:
		ms, err := s.store.MessagesByUID(ctx, acct, a.Mailbox, []uint32{a.UID})
		if err != nil {
			return "", err
		}
		if len(ms) == 0 {
			return "", fmt.Errorf("chat: attached message: %w", storage.ErrNotFound)
		}
		return "", nil
	}
	return "", storage.ErrInvalid
}

// setRead moves the account's read marker of a room forward.
func (s *Server) setRead(ctx context.Context, acct storage.Account, room storage.RoomID, seq uint64) *opError {
	if _, err := s.store.SetReadMarker(ctx, room, acct.ID, seq); err != nil {
		return s.storeError(ctx, acct.ID, "chat.read", room, err)
	}
	return nil
}
