package smtpd_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type messageEvent struct {
	listener, outcome string
	local, remote     int
}

// messages records what the server tells its Observer.
type messages struct {
	mu     sync.Mutex
	events []messageEvent
}

func (m *messages) MessageDone(listener, outcome string, local, remote int, elapsed time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if elapsed > 0 {
		m.events = append(m.events, messageEvent{listener, outcome, local, remote})
	}
}

func (m *messages) list() []messageEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]messageEvent(nil), m.events...)
}

// TestObserverOutcomes: each DATA is reported once, before its reply, with
// its outcome (accepted with the local and remote recipient counts, or
// rejected for a 5xx); a transaction refused at RCPT has no DATA and is
// not reported.
func TestObserverOutcomes(t *testing.T) {
	obs := &messages{}
	addr, clientTLS, _ := fuzzServer(t, obs)
	c, err := smtp.DialTLS(addr, clientTLS)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Auth(sasl.NewPlainClient("", drAddr, drPass)))

	require.NoError(t, c.SendMail(drAddr, []string{nurse, bob, "x@" + trustedDomain}, strings.NewReader(message(drAddr, nurse, "ok", "bonjour"))))
	err = c.SendMail(drAddr, []string{nurse}, strings.NewReader(message(nurse, drAddr, "not mine", "bonjour")))
	requireReply(t, err, 550, smtp.EnhancedCode{5, 7, 1})
	require.Error(t, c.SendMail(drAddr, []string{"nobody@" + domain}, strings.NewReader(message(drAddr, nurse, "x", "y"))))
	require.NoError(t, c.Quit())

	assert.Equal(t, []messageEvent{
		{"submission", "accepted", 2, 1},
		{"submission", "rejected", 0, 0},
	}, obs.list())
}
