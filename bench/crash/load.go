package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// user is a local account with a known password.
type user struct {
	addr, pass string
}

// target is where the load goes, and whether the server is down on
// purpose (errors then are expected, not reported).
type target struct {
	addrs  listeners
	tls    *tls.Config
	domain string
	run    string // this run's random tag, in every Message-ID
	room   int64  // the chat room every chat client posts to
	killed atomic.Bool
}

// counters are one round's acknowledgements and unexpected errors.
type counters struct {
	submits, deliveries, appends, flags, chats atomic.Int64
	retries                                    atomic.Int64 // chat sends refused (rate_limited, internal) and retried

	mu     sync.Mutex
	errors []string // while the server was up
}

// fail records err unless the server was killed on purpose.
func (c *counters) fail(t *target, who string, err error) {
	if t.killed.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errors = append(c.errors, fmt.Sprintf("%s: %v", who, err))
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// message builds a small RFC 5322 message with a unique Message-ID and a
// body of size bytes.
func message(from string, to []string, mid string, size int, rng *rand.Rand) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: crash test %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n",
		from, strings.Join(to, ", "), mid, time.Now().Format(time.RFC1123Z), mid)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const alphabet = "abcdefghijklmnopqrstuvwxyz      "
	line := 0
	for range size {
		b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		if line++; line == 72 {
			b.WriteString("\r\n")
			line = 0
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// submitter sends mail over submission (STARTTLS, AUTH PLAIN) to local
// users, one message after another on one session, reconnecting on error.
// A message is journaled only once the server answered 250 to the final
// dot (RFC 5321 4.1.1.4): the server promises it is committed.
type submitter struct {
	id    int
	from  user
	users []user
	n     int // messages attempted, for unique Message-IDs
}

func (s *submitter) run(ctx context.Context, t *target, j *journal, c *counters, round int, rng *rand.Rand, ready func()) {
	for ctx.Err() == nil {
		if err := s.session(ctx, t, j, c, round, rng, ready); err != nil {
			c.fail(t, fmt.Sprintf("submission client %d", s.id), err)
			pause(ctx, 200*time.Millisecond)
		}
	}
}

func (s *submitter) session(ctx context.Context, t *target, j *journal, c *counters, round int, rng *rand.Rand, ready func()) error {
	cl, err := smtp.DialStartTLS(t.addrs.submission, t.tls)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer cl.Close()
	cl.CommandTimeout, cl.SubmissionTimeout = 30*time.Second, 60*time.Second
	// RFC 4954 4, RFC 4616: AUTH PLAIN, over TLS only.
	if err := cl.Auth(sasl.NewPlainClient("", s.from.addr, s.from.pass)); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	ready()
	for ctx.Err() == nil {
		s.n++
		mid := fmt.Sprintf("crash.%s.r%d.s%d.%d@%s", t.run, round, s.id, s.n, t.domain)
		to := []string{s.users[rng.IntN(len(s.users))].addr}
		if rng.IntN(2) == 0 {
			if other := s.users[rng.IntN(len(s.users))].addr; other != to[0] {
				to = append(to, other)
			}
		}
		msg := message(s.from.addr, to, mid, 500+rng.IntN(8000), rng)
		if err := cl.Mail(s.from.addr, nil); err != nil {
			return fmt.Errorf("MAIL: %w", err)
		}
		for _, rcpt := range to {
			if err := cl.Rcpt(rcpt, nil); err != nil {
				return fmt.Errorf("RCPT: %w", err)
			}
		}
		w, err := cl.Data()
		if err != nil {
			return fmt.Errorf("DATA: %w", err)
		}
		if _, err := w.Write(msg); err != nil {
			return fmt.Errorf("DATA: %w", err)
		}
		// Close returns nil only on a 250 reply.
		if err := w.Close(); err != nil {
			return fmt.Errorf("end of DATA: %w", err)
		}
		if err := j.add(record{Kind: kindSubmit, Round: round, User: s.from.addr, To: to, MessageID: mid}); err != nil {
			return err
		}
		c.submits.Add(1)
		c.deliveries.Add(int64(len(to)))
	}
	return nil
}

// appender APPENDs to its own INBOX over IMAP (STARTTLS, LOGIN) and sets
// flags on what it appended. APPEND is journaled with the UID of the
// APPENDUID response code (RFC 4315 3) after the tagged OK; a flag after
// the UID STORE's OK.
type appender struct {
	id       int
	user     user
	n        int
	appended []imap.UID
}

// storeFlags are the flags the load sets; none is ever cleared, so each
// journaled one must be there.
var storeFlags = []imap.Flag{imap.FlagFlagged, imap.FlagSeen, imap.FlagAnswered}

func (a *appender) run(ctx context.Context, t *target, j *journal, c *counters, round int, rng *rand.Rand, ready func()) {
	for ctx.Err() == nil {
		if err := a.session(ctx, t, j, c, round, rng, ready); err != nil {
			c.fail(t, fmt.Sprintf("IMAP client %d", a.id), err)
			pause(ctx, 200*time.Millisecond)
		}
	}
}

func (a *appender) session(ctx context.Context, t *target, j *journal, c *counters, round int, rng *rand.Rand, ready func()) error {
	cl, err := imapclient.DialStartTLS(t.addrs.imap, &imapclient.Options{TLSConfig: t.tls})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer cl.Close()
	// A command never waits forever on a live server.
	watchdog := context.AfterFunc(ctx, func() { time.AfterFunc(30*time.Second, func() { cl.Close() }) })
	defer watchdog()
	if err := cl.Login(a.user.addr, a.user.pass).Wait(); err != nil {
		return fmt.Errorf("LOGIN: %w", err)
	}
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	ready()
	for ctx.Err() == nil {
		a.n++
		mid := fmt.Sprintf("crash.%s.r%d.a%d.%d@%s", t.run, round, a.id, a.n, t.domain)
		msg := message(a.user.addr, []string{a.user.addr}, mid, 500+rng.IntN(8000), rng)
		cmd := cl.Append("INBOX", int64(len(msg)), nil) // RFC 9051 6.3.12
		if _, err := cmd.Write(msg); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		data, err := cmd.Wait()
		if err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		if data.UID == 0 {
			return errors.New("APPEND: OK without APPENDUID")
		}
		if err := j.add(record{Kind: kindAppend, Round: round, User: a.user.addr, Mailbox: "INBOX",
			MessageID: mid, UID: uint32(data.UID), UIDValidity: data.UIDValidity}); err != nil {
			return err
		}
		c.appends.Add(1)
		a.appended = append(a.appended, data.UID)

		// Every other APPEND, a UID STORE +FLAGS.SILENT on one of ours
		// (RFC 9051 6.4.6, 6.4.9).
		if a.n%2 == 0 {
			uid := a.appended[rng.IntN(len(a.appended))]
			flag := storeFlags[rng.IntN(len(storeFlags))]
			err := cl.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
			if err != nil {
				return fmt.Errorf("UID STORE: %w", err)
			}
			if err := j.add(record{Kind: kindFlag, Round: round, User: a.user.addr, Mailbox: "INBOX",
				UID: uint32(uid), UIDValidity: data.UIDValidity, Flag: string(flag)}); err != nil {
				return err
			}
			c.flags.Add(1)
		}
	}
	return nil
}

// webClient is a browser-like client of the HTTPS listener: it logs in
// with the web form (chat/web: POST /login) and carries the session
// cookie and this origin on every request.
type webClient struct {
	hc     *http.Client
	base   string // https://host:port
	cookie string
}

func newWebClient(t *target) *webClient {
	return &webClient{
		hc:   &http.Client{Transport: &http.Transport{TLSClientConfig: t.tls}, Timeout: 60 * time.Second},
		base: "https://" + t.addrs.http,
	}
}

// login opens a web session (sessions live in memory: every restart
// ends them).
func (w *webClient) login(ctx context.Context, u user) error {
	form := url.Values{"address": {u.addr}, "password": {u.pass}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Origin", w.base)
	resp, err := w.hc.Do(req)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login as %s: %s", u.addr, resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "relais_session" {
			w.cookie = c.Value
			return nil
		}
	}
	return fmt.Errorf("login as %s: no session cookie", u.addr)
}

func (w *webClient) header() http.Header {
	h := http.Header{}
	h.Set("Cookie", "relais_session="+w.cookie)
	h.Set("Origin", w.base)
	return h
}

// call does a JSON REST request (chat/PROTOCOL.md 4) and decodes the
// answer into out.
func (w *webClient) call(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, body)
	if err != nil {
		return err
	}
	req.Header = w.header()
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %.200s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding: %w", method, path, err)
		}
	}
	return nil
}

// createRoom makes the team room the chat load posts to, with every
// member; the creator is w's user.
func (w *webClient) createRoom(ctx context.Context, name string, members []string) (int64, error) {
	var room struct {
		ID int64 `json:"id"`
	}
	err := w.call(ctx, http.MethodPost, "/api/v1/chat/rooms",
		map[string]any{"kind": "team", "name": name, "members": members}, &room, http.StatusCreated)
	if err != nil {
		return 0, fmt.Errorf("creating the chat room: %w", err)
	}
	return room.ID, nil
}

// chatter posts to the room over the WebSocket (chat/PROTOCOL.md 2) and
// journals each message once the server's ack, sent after the commit,
// names its seq.
type chatter struct {
	id   int
	user user
	n    int
}

// chatPace keeps one user under the server's per-user rate (5/s).
const chatPace = 220 * time.Millisecond

func (ch *chatter) run(ctx context.Context, t *target, j *journal, c *counters, round int, ready func()) {
	for ctx.Err() == nil {
		if err := ch.session(ctx, t, j, c, round, ready); err != nil {
			c.fail(t, fmt.Sprintf("chat client %d", ch.id), err)
			pause(ctx, 200*time.Millisecond)
		}
	}
}

// frame is the part of the server's frames the load reads.
type frame struct {
	Type      string `json:"type"`
	Ref       string `json:"ref"`
	Room      int64  `json:"room"`
	Seq       int64  `json:"seq"`
	ClientID  string `json:"clientId"`
	Duplicate bool   `json:"duplicate"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

func (ch *chatter) session(ctx context.Context, t *target, j *journal, c *counters, round int, ready func()) error {
	w := newWebClient(t)
	if err := w.login(ctx, ch.user); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ws, _, err := websocket.Dial(dctx, "wss://"+t.addrs.http+"/chat/ws", &websocket.DialOptions{HTTPClient: w.hc, HTTPHeader: w.header()})
	cancel()
	if err != nil {
		return fmt.Errorf("WebSocket: %w", err)
	}
	defer ws.CloseNow()
	if err := writeFrame(ws, map[string]any{"type": "hello", "v": 1}); err != nil {
		return err
	}
	if f, err := readFrame(ws, func(f frame) bool { return f.Type == "welcome" || f.Type == "error" }); err != nil {
		return err
	} else if f.Type == "error" {
		return fmt.Errorf("hello: %s: %s", f.Code, f.Message)
	}
	ready()
	for ctx.Err() == nil {
		ch.n++
		cid := fmt.Sprintf("r%d-c%d-%d", round, ch.id, ch.n)
		body := fmt.Sprintf("crash %s %s", t.run, cid)
		// A rate-limited or failed send is retried with the same clientId
		// (PROTOCOL.md 2.3): the server commits it once.
		for {
			sent := time.Now()
			err := writeFrame(ws, map[string]any{"type": "send", "id": cid, "room": t.room, "clientId": cid, "body": body})
			if err != nil {
				return err
			}
			f, err := readFrame(ws, func(f frame) bool { return (f.Type == "ack" || f.Type == "error") && f.Ref == cid })
			if err != nil {
				return err
			}
			if f.Type == "ack" {
				if err := j.add(record{Kind: kindChat, Round: round, User: ch.user.addr, Room: f.Room, Seq: f.Seq,
					ClientID: cid, Body: body}); err != nil {
					return err
				}
				c.chats.Add(1)
				pause(ctx, chatPace-time.Since(sent))
				break
			}
			switch f.Code {
			case "rate_limited", "internal":
				c.retries.Add(1)
				pause(ctx, time.Second)
				if ctx.Err() != nil {
					return nil
				}
			default:
				return fmt.Errorf("send: %s: %s", f.Code, f.Message)
			}
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")
	return nil
}

func writeFrame(ws *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("WebSocket write: %w", err)
	}
	return nil
}

// readFrame reads frames until one matches (others, such as message
// events, are skipped), within 30 s.
func readFrame(ws *websocket.Conn, match func(frame) bool) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return frame{}, fmt.Errorf("WebSocket read: %w", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return frame{}, fmt.Errorf("WebSocket: bad frame: %w", err)
		}
		if match(f) {
			return f, nil
		}
	}
}
