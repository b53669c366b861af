package imapd

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/storage"
)

const delim = storage.MailboxDelimiter

// normName strips the trailing delimiter a client may add to say that it
// means to create children (RFC 9051 6.3.4), and canonicalises INBOX.
func normName(name string) string {
	name = strings.TrimSuffix(name, string(delim))
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// Create creates a mailbox (RFC 9051 6.3.4), with a special-use attribute
// when asked (RFC 6154 3).
func (s *session) Create(name string, options *imap.CreateOptions) (err error) {
	defer s.guard("create")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	var use string
	if options != nil {
		switch len(options.SpecialUse) {
		case 0:
		case 1:
			use = string(options.SpecialUse[0])
			if !knownSpecialUse(use) {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Unsupported special-use attribute"} // RFC 6154 6
			}
		default:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Only one special-use attribute per mailbox"}
		}
	}
	if _, err := s.srv.store.CreateMailbox(s.ctx(), s.acct.ID, normName(name), use); err != nil {
		return s.mailboxErr("create", err)
	}
	return nil
}

func knownSpecialUse(use string) bool {
	switch use {
	case storage.SpecialUseSent, storage.SpecialUseDrafts, storage.SpecialUseTrash, storage.SpecialUseJunk,
		storage.SpecialUseArchive, storage.SpecialUseAll, storage.SpecialUseFlagged:
		return true
	}
	return false
}

// Delete deletes a mailbox (RFC 9051 6.3.9); INBOX cannot be deleted.
func (s *session) Delete(name string) (err error) {
	defer s.guard("delete")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.srv.store.DeleteMailbox(s.ctx(), s.acct.ID, normName(name)); err != nil {
		return s.mailboxErr("delete", err)
	}
	return nil
}

// Rename renames a mailbox and its children (RFC 9051 6.3.6).
func (s *session) Rename(from, to string, _ *imap.RenameOptions) (err error) {
	defer s.guard("rename")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.srv.store.RenameMailbox(s.ctx(), s.acct.ID, normName(from), normName(to)); err != nil {
		return s.mailboxErr("rename", err)
	}
	return nil
}

// Subscribe adds a mailbox to the subscriptions (RFC 9051 6.3.7).
func (s *session) Subscribe(name string) (err error) {
	defer s.guard("subscribe")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.srv.store.SetSubscribed(s.ctx(), s.acct.ID, normName(name), true); err != nil {
		return s.mailboxErr("subscribe", err)
	}
	return nil
}

// Unsubscribe removes a mailbox from the subscriptions (RFC 9051 6.3.8).
func (s *session) Unsubscribe(name string) (err error) {
	defer s.guard("unsubscribe")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.srv.store.SetSubscribed(s.ctx(), s.acct.ID, normName(name), false); err != nil {
		return s.mailboxErr("unsubscribe", err)
	}
	return nil
}

// List answers LIST and LSUB (RFC 9051 6.3.9, LIST-EXTENDED RFC 5258,
// LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, CHILDREN RFC 3348).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) (err error) {
	defer s.guard("list")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if options == nil {
		options = &imap.ListOptions{}
	}
	// RFC 9051 6.3.9: an empty pattern asks for the delimiter.
	if len(patterns) == 1 && patterns[0] == "" {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	mboxes, err := s.srv.store.Mailboxes(s.ctx(), s.acct.ID)
	if err != nil {
		return s.internal("list", err)
	}
	hasChildren := make(map[string]bool, len(mboxes))
	for _, m := range mboxes {
		if i := strings.LastIndexByte(m.Name, byte(delim)); i > 0 {
			hasChildren[m.Name[:i]] = true
		}
	}
	for _, m := range mboxes {
		if !matchAny(m.Name, ref, patterns) {
			continue
		}
		if options.SelectSubscribed && !m.Subscribed {
			continue
		}
		if options.SelectSpecialUse && m.SpecialUse == "" {
			continue
		}
		data := &imap.ListData{Delim: delim, Mailbox: m.Name}
		if hasChildren[m.Name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if m.Subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if m.SpecialUse != "" {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(m.SpecialUse))
		}
		if options.ReturnStatus != nil {
			st, err := s.status(m, options.ReturnStatus)
			if err != nil {
				return s.internal("list-status", err)
			}
			data.Status = st
		}
		if err := w.WriteList(data); err != nil {
			return fmt.Errorf("imapd: list: %w", err)
		}
	}
	return nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
		// INBOX is case-insensitive (RFC 9051 5.1).
		if name == "INBOX" && imapserver.MatchList(name, delim, strings.ToUpper(ref), strings.ToUpper(p)) {
			return true
		}
	}
	return false
}

// Status answers STATUS (RFC 9051 6.3.11, STATUS=SIZE RFC 8438).
func (s *session) Status(name string, options *imap.StatusOptions) (_ *imap.StatusData, err error) {
	defer s.guard("status")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.srv.store.MailboxByName(s.ctx(), s.acct.ID, normName(name))
	if err != nil {
		return nil, s.mailboxErr("status", err)
	}
	st, err := s.status(m, options)
	if err != nil {
		return nil, s.mailboxErr("status", err)
	}
	return st, nil
}

func (s *session) status(m storage.Mailbox, options *imap.StatusOptions) (*imap.StatusData, error) {
	data := &imap.StatusData{Mailbox: m.Name}
	if options.UIDNext {
		data.UIDNext = imap.UID(m.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = m.UIDValidity
	}
	if options.HighestModSeq {
		data.HighestModSeq = m.HighestModSeq
	}
	if options.AppendLimit {
		limit := s.srv.cfg.AppendLimit
		data.AppendLimit = &limit
	}
	if options.NumMessages || options.NumUnseen || options.NumDeleted || options.Size || options.NumRecent {
		c, err := s.srv.store.MailboxCounts(s.ctx(), s.acct.ID, m.ID)
		if err != nil {
			return nil, fmt.Errorf("counts of mailbox %d: %w", m.ID, err)
		}
		if options.NumMessages {
			data.NumMessages = &c.Messages
		}
		if options.NumUnseen {
			data.NumUnseen = &c.Unseen
		}
		if options.NumDeleted {
			data.NumDeleted = &c.Deleted
		}
		if options.Size {
			data.Size = &c.Size
		}
		if options.NumRecent {
			var zero uint32
			data.NumRecent = &zero
		}
	}
	return data, nil
}
