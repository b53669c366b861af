package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// runIngest sends n messages over c connections (many per connection),
// spread over the recipients in turn, then polls each recipient's INBOX
// with STATUS until it holds every message: the end-to-end rate counts
// from the first connection to the last message visible over IMAP.
func runIngest(args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ExitOnError)
	smtpAddr := fs.String("smtp", "", "submission `ADDR` (STARTTLS + AUTH PLAIN)")
	imapAddr := fs.String("imap", "", "IMAP `ADDR` (STARTTLS) to check delivery")
	from := fs.String("from", "", "sender account (SMTP login and MAIL FROM)")
	to := fs.String("to", "", "comma-separated recipient accounts")
	password := fs.String("password", "", "password of every account (default $LOAD_PASSWORD)")
	n := fs.Int("n", 2000, "messages")
	conns := fs.Int("c", 8, "SMTP connections")
	size := fs.Int("size", 10<<10, "message size in bytes")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after")
	poll := fs.Duration("poll", 100*time.Millisecond, "STATUS polling interval once every message is accepted")
	fs.Parse(args)
	if *password == "" {
		*password = envPassword()
	}
	rcpts := list(*to)
	if *smtpAddr == "" || *imapAddr == "" || *from == "" || len(rcpts) == 0 || *password == "" || *n <= 0 || *conns <= 0 {
		return errors.New("-smtp, -imap, -from, -to, a password, -n > 0 and -c > 0 are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	// One IMAP connection per recipient, opened before the clock starts.
	watchers := make([]*imapclient.Client, len(rcpts))
	base := make([]uint32, len(rcpts))
	for i, r := range rcpts {
		c, err := dialIMAP(*imapAddr, r, *password)
		if err != nil {
			return err
		}
		defer c.Close()
		watchers[i] = c
		if base[i], err = messages(c); err != nil {
			return err
		}
	}
	want := make([]uint32, len(rcpts))
	for i := range *n {
		want[i%len(rcpts)]++
	}

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *conns)
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendLoop(ctx, *smtpAddr, *from, *password, rcpts, *size, *n, &next); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	accepted := time.Since(start)

	// RFC 9051 6.3.11: STATUS MESSAGES, repeated until each INBOX holds
	// base+want messages; a complete mailbox is not asked again.
	pending := make(map[int]bool, len(rcpts))
	for i := range rcpts {
		pending[i] = true
	}
	for len(pending) > 0 {
		for i := range pending {
			got, err := messages(watchers[i])
			if err != nil {
				return err
			}
			if got >= base[i]+want[i] {
				delete(pending, i)
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d mailboxes still incomplete: %w", len(pending), ctx.Err())
		case <-time.After(*poll):
		}
	}
	visible := time.Since(start)
	fmt.Printf("RESULT ingest messages=%d conns=%d size=%d accepted_s=%s visible_s=%s accepted_per_s=%.1f visible_per_s=%.1f\n",
		*n, *conns, *size, seconds(accepted), seconds(visible),
		float64(*n)/accepted.Seconds(), float64(*n)/visible.Seconds())
	return nil
}

func messages(c *imapclient.Client) (uint32, error) {
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, fmt.Errorf("imap: status: %w", err)
	}
	if st.NumMessages == nil {
		return 0, errors.New("imap: status without MESSAGES")
	}
	return *st.NumMessages, nil
}

// sendLoop sends messages on one connection until next reaches n:
// STARTTLS, AUTH PLAIN, then MAIL/RCPT/DATA per message (RFC 5321 3.3).
func sendLoop(ctx context.Context, addr, from, password string, rcpts []string, size, n int, next *atomic.Int64) error {
	c, err := dialSubmission(addr, from, password)
	if err != nil {
		return err
	}
	defer c.Close()
	for ctx.Err() == nil {
		i := int(next.Add(1)) - 1
		if i >= n {
			return c.Quit()
		}
		rcpt := rcpts[i%len(rcpts)]
		if err := c.SendMail(from, []string{rcpt}, bytes.NewReader(message(i, from, rcpt, size))); err != nil {
			return fmt.Errorf("smtp: message %d: %w", i, err)
		}
	}
	return ctx.Err()
}

// dialSubmission connects with STARTTLS and authenticates, retrying a
// temporary failure (RFC 4954 6: 454) a few times as a mail client does:
// Postfix answers 454 when its cached connection to Dovecot's auth
// service was closed while idle, and reconnects for the next attempt.
func dialSubmission(addr, user, password string) (*smtp.Client, error) {
	for attempt := 1; ; attempt++ {
		c, err := smtp.DialStartTLS(addr, clientTLS())
		if err != nil {
			return nil, fmt.Errorf("smtp: dial %s: %w", addr, err)
		}
		err = c.Auth(sasl.NewPlainClient("", user, password))
		if err == nil {
			return c, nil
		}
		c.Close()
		var se *smtp.SMTPError
		if attempt == 3 || !errors.As(err, &se) || se.Code/100 != 4 {
			return nil, fmt.Errorf("smtp: auth %s: %w", user, err)
		}
		log.Printf("smtp: auth %s: %v (attempt %d, retrying)", user, err, attempt)
		time.Sleep(100 * time.Millisecond)
	}
}
