package imapd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// session is one IMAP connection's state. imapserver calls its methods from
// the connection's goroutine, except Idle, which runs in a goroutine of its
// own that may outlive the command when the connection breaks: mu
// serialises them.
type session struct {
	mu     sync.Mutex
	srv    *Server
	conn   *imapserver.Conn
	remote net.Addr
	log    *slog.Logger

	acct *storage.Account
	sub  *storage.Subscription
	view *view // selected mailbox, nil when none

	searchRes imap.UIDSet // RFC 5182 saved result, as UIDs
}

var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
	_ imapserver.SessionNamespace      = (*session)(nil)
	_ imapserver.SessionMove           = (*session)(nil)
	_ imapserver.Session               = (*session)(nil)
	_ Authenticator                    = (*authn.Authenticator)(nil)
	_ imapserver.Logger                = printfLogger{}
)

func (s *session) ctx() context.Context { return s.srv.ctx }

// guard starts a command; the function it returns, deferred, recovers a
// panic in the command (counted and logged with its stack; the client gets
// NO [SERVERBUG] instead of a dropped connection) and tells the Observer
// how long the command took. Use as: defer s.guard("fetch")(&err).
func (s *session) guard(cmd string) func(err *error) {
	start := time.Now()
	return func(err *error) {
		if v := recover(); v != nil {
			s.srv.panics.Add(1)
			ref := correlationID()
			s.log.Error("panic in imap command", "cmd", cmd, "ref", ref, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			*err = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error, reference " + ref}
		}
		if obs := s.srv.cfg.Observer; obs != nil && cmd != "idle" {
			obs.IMAPCommand(cmd, time.Since(start))
		}
	}
}

// internal logs a storage or other internal error and returns the generic
// reply the client sees (RFC 9051 7.1: NO with a response code).
func (s *session) internal(cmd string, err error) error {
	ref := correlationID()
	s.log.Error("imap command failed", "cmd", cmd, "ref", ref, "err", err)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error, reference " + ref}
}

// mailboxErr maps a storage error about a mailbox to an IMAP reply.
func (s *session) mailboxErr(cmd string, err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	case errors.Is(err, storage.ErrExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
	case errors.Is(err, storage.ErrForbidden):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Operation not permitted on this mailbox"}
	case errors.Is(err, storage.ErrInvalid):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Invalid mailbox name"}
	case errors.Is(err, storage.ErrTooLarge):
		return errTooBig
	}
	return s.internal(cmd, err)
}

// destErr maps a storage error of APPEND, COPY or MOVE: a missing target
// mailbox gets TRYCREATE (RFC 9051 6.3.12, 6.4.7), the rest as mailboxErr.
func (s *session) destErr(cmd string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return errTryCreate
	}
	return s.mailboxErr(cmd, err)
}

// errTryCreate is the reply when the target of COPY, MOVE or APPEND does not
// exist (RFC 9051 6.3.12, 6.4.7).
var errTryCreate = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}

func correlationID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close ends the session (imapserver calls it when the connection ends).
func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logout()
	s.srv.forget(s)
	s.log.Debug("disconnected")
	return nil
}

// Login authenticates (RFC 9051 6.2.3). The reply never says whether the
// account exists; throttling is reported as NO [UNAVAILABLE].
func (s *session) Login(username, password string) (err error) {
	defer s.guard("login")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	acct, err := s.srv.auth.Authenticate(s.ctx(), username, password, s.remote)
	switch {
	case err == nil:
	case errors.Is(err, authn.ErrBadCredentials):
		s.log.Info("login failed")
		return imapserver.ErrAuthFailed
	case errors.Is(err, authn.ErrThrottled):
		s.log.Warn("login throttled")
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed attempts, try again later"}
	default:
		ref := correlationID()
		s.log.Error("login error", "ref", ref, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Temporary failure, reference " + ref}
	}
	s.acct = &acct
	s.sub = s.srv.store.Subscribe(acct.ID)
	s.log = s.log.With("account", acct.ID)
	s.log.Info("login")
	return nil
}

// Unauthenticate returns to the not-authenticated state (RFC 8437).
func (s *session) Unauthenticate() (err error) {
	defer s.guard("unauthenticate")(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logout()
	return nil
}

// logout drops the account's state: the view, the feed subscription, the
// saved search result. The caller holds s.mu.
func (s *session) logout() {
	s.view = nil
	if s.sub != nil {
		s.sub.Close()
		s.sub = nil
	}
	s.acct = nil
	s.searchRes = nil
}

// AppendLimit is advertised as APPENDLIMIT= (RFC 7889).
func (s *session) AppendLimit() uint32 { return s.srv.cfg.AppendLimit }

// Namespace answers NAMESPACE (RFC 2342, RFC 9051 6.3.10): one personal
// namespace "" with delimiter "/".
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: storage.MailboxDelimiter}},
	}, nil
}
