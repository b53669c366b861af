package smtpd_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPanicInDeliveryIsRecovered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{panicsOK: true, wrap: func(s smtpdStore) smtpdStore {
		return panickingStore{Store: s, once: make(chan struct{})}
	}})
	c := e.submit(drAddr, drPass)
	err := c.SendMail(drAddr, []string{nurse}, strings.NewReader(message(drAddr, nurse, "panic", "x\r\n")))
	requireReply(t, err, 421, smtp.EnhancedCode{4, 0, 0})
	assert.EqualValues(t, 1, e.sub.Panics())
	assert.Empty(t, e.mailbox(nurse, "INBOX"))
	assert.Contains(t, e.log.String(), "boom in Submit", "logged with its stack")

	// The server keeps serving.
	c2 := e.submit(drAddr, drPass)
	require.NoError(t, c2.SendMail(drAddr, []string{nurse}, strings.NewReader(message(drAddr, nurse, "after", "x\r\n"))))
	e.only(nurse, "INBOX")
	assert.EqualValues(t, 1, e.sub.Panics(), "counted once")
}
