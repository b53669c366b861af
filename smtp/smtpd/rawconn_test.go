package smtpd_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
)

// rawConn speaks SMTP by hand, to pipeline and to check exact replies.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	r    *textproto.Reader
	w    *bufio.Writer
}

func dialRaw(t testing.TB, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.Dial("tcp", addr, cfg)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	require.NoError(t, err)
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, r: textproto.NewReader(bufio.NewReader(conn)), w: bufio.NewWriter(conn)}
}

func (c *rawConn) sendRaw(s string) {
	c.t.Helper()
	_, err := c.w.WriteString(s)
	require.NoError(c.t, err)
	require.NoError(c.t, c.w.Flush())
}

func (c *rawConn) send(line string) { c.t.Helper(); c.sendRaw(line + "\r\n") }

func (c *rawConn) sendAll(lines ...string) {
	c.t.Helper()
	c.sendRaw(strings.Join(lines, "\r\n") + "\r\n")
}

// expect reads one (possibly multi-line) reply and checks its code.
func (c *rawConn) expect(code int) string {
	c.t.Helper()
	got, msg, err := c.r.ReadResponse(0)
	var perr *textproto.Error
	if errors.As(err, &perr) {
		got, msg = perr.Code, perr.Msg
	} else {
		require.NoError(c.t, err)
	}
	require.Equal(c.t, code, got, "reply: %d %s", got, msg)
	return msg
}

func (c *rawConn) expectEnh(code int, enh string) string {
	c.t.Helper()
	msg := c.expect(code)
	require.True(c.t, strings.HasPrefix(msg, enh+" "), "reply %d %s, want %s", code, msg, enh)
	return msg
}

func plainIR(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func bdat(chunk string, last bool) string {
	s := fmt.Sprintf("BDAT %d", len(chunk))
	if last {
		s += " LAST"
	}
	return s + "\r\n" + chunk
}

type smtpdStore = smtpd.Store

var errDiskOnFire = errors.New("sqlite: disk I/O error on /var/lib/relais/relais.db")

// failingStore fails every delivery.
type failingStore struct{ smtpd.Store }

func (failingStore) Deliver(context.Context, []byte, time.Time, []storage.Recipient) ([]storage.Delivered, error) {
	return nil, errDiskOnFire
}

func (failingStore) Submit(context.Context, storage.Submission) ([]storage.Delivered, storage.QueueID, error) {
	return nil, 0, errDiskOnFire
}

// panickingStore panics on the first delivery only.
type panickingStore struct {
	smtpd.Store
	once chan struct{}
}

func (p panickingStore) Deliver(ctx context.Context, raw []byte, d time.Time, r []storage.Recipient) ([]storage.Delivered, error) {
	select {
	case <-p.once:
		return p.Store.Deliver(ctx, raw, d, r)
	default:
		close(p.once)
		panic("boom in Deliver")
	}
}

func (p panickingStore) Submit(ctx context.Context, s storage.Submission) ([]storage.Delivered, storage.QueueID, error) {
	select {
	case <-p.once:
		return p.Store.Submit(ctx, s)
	default:
		close(p.once)
		panic("boom in Submit")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
