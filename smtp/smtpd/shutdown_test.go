package smtpd_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShutdownLetsTransactionsFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noCleanup: true})
	busy := dialRaw(t, e.tlsAddr, e.client)
	busy.expect(220)
	busy.send("EHLO busy.test")
	busy.expect(250)
	busy.send("AUTH PLAIN " + plainIR("", drAddr, drPass))
	busy.expect(235)
	busy.sendAll("MAIL FROM:<"+drAddr+">", "RCPT TO:<"+nurse+">", "DATA")
	busy.expect(250)
	busy.expect(250)
	busy.expect(354)
	msg := message(drAddr, nurse, "inflight", "first half\r\n")
	busy.sendRaw(msg)

	idle := dialRaw(t, e.tlsAddr, e.client)
	idle.expect(220)
	idle.send("EHLO idle.test")
	idle.expect(250)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- e.sub.Shutdown(ctx)
	}()

	// The idle session is told to go away.
	idle.expectEnh(421, "4.4.2")
	// The listener no longer accepts: poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", e.subAddr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		require.True(t, time.Now().Before(deadline), "listener still open")
	}
	// The transaction in flight completes, with its 250.
	busy.sendRaw("second half\r\n.\r\n")
	busy.expectEnh(250, "2.0.0")
	require.NoError(t, <-done)
	raw, _ := e.only(nurse, "INBOX")
	_, rest := splitTrace(t, raw)
	assert.Equal(t, msg+"second half\r\n", string(rest))
	require.NoError(t, e.in.Shutdown(context.Background()))
}

// TestShutdownClosesSilentConnections: connections that never sent EHLO
// (plain, implicit TLS, or just after STARTTLS) do not hold Shutdown until
// its deadline; they get 421 like idle sessions.
func TestShutdownClosesSilentConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noCleanup: true})
	plain := dialRaw(t, e.subAddr, nil)
	plain.expect(220)
	implicit := dialRaw(t, e.tlsAddr, e.client)
	implicit.expect(220)
	inbound := dialRaw(t, e.inAddr, nil)
	inbound.expect(220)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.sub.Shutdown(ctx), "shutdown must not wait for silent clients")
	require.NoError(t, e.in.Shutdown(ctx))
	for _, c := range []*rawConn{plain, implicit, inbound} {
		c.expect(421)
	}
}
