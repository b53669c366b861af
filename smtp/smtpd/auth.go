package smtpd

import (
	"context"
	"fmt"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// submissionSession adds SMTP AUTH (RFC 4954) to a session. go-smtp offers
// and accepts AUTH only once TLS is up (AllowInsecureAuth is false): before
// STARTTLS it is neither advertised nor allowed (RFC 4954 4, RFC 3207 4).
type submissionSession struct {
	*session
}

var _ smtp.AuthSession = (*submissionSession)(nil)

// AuthMechanisms lists PLAIN (RFC 4616) and LOGIN, which Outlook and older
// clients still use.
func (s *submissionSession) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a SASL exchange.
func (s *submissionSession) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 2: an authorization identity other than the
			// authentication identity would be proxy authorization, which
			// we do not offer.
			if identity != "" && identity != username {
				return s.reply(errAuthzRefused, stageAuth)
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: s.login}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *submissionSession) login(username, password string) (err error) {
	defer s.recoverPanic("AUTH")
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	acct, err := s.srv.auth.Authenticate(ctx, username, password, s.remote)
	if err != nil {
		s.log.Warn("authentication failed", "username", username, "reason", authReason(err))
		return s.reply(fmt.Errorf("authenticating: %w", err), stageAuth)
	}
	s.acct = &acct
	s.log = s.log.With("account", int64(acct.ID))
	s.log.Info("authenticated", "mechanism", "password")
	return nil
}

// authReason names a refusal for the log without its internals.
func authReason(err error) string {
	switch {
	case isThrottled(err):
		return "throttled"
	case isBadCredentials(err):
		return "bad credentials"
	}
	return "error"
}

// loginServer is the server side of SASL LOGIN
// (draft-murchison-sasl-login-00): the server asks "Username:" then
// "Password:", each answer base64 (go-smtp decodes it). go-sasl no longer
// ships a server for it.
type loginServer struct {
	authenticate func(username, password string) error
	state        int
	username     string
}

var errLoginUnexpected = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Unexpected SASL LOGIN response"}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.state {
	case 0:
		// An initial response (AUTH LOGIN dXNlcg==) carries the username.
		if response == nil {
			l.state = 1
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.state = 2
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.state = 2
		return []byte("Password:"), false, nil
	case 2:
		l.state = 3
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, true, errLoginUnexpected
}
