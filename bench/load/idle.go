package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// runIdle opens n IMAP connections (accounts in turn), each logged in,
// INBOX selected and in IDLE (RFC 2177), writes the ready file and holds
// them until SIGTERM or SIGINT: the script measures the server's memory
// meanwhile. Logins run a few at a time: both servers hash passwords with
// argon2id (64 MiB each).
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	acct := addAccountFlags(fs)
	n := fs.Int("n", 1000, "connections")
	parallel := fs.Int("parallel", 4, "logins at once")
	ready := fs.String("ready", "", "`FILE` written once every connection is idle")
	fs.Parse(args)
	users, err := acct.check()
	if err != nil {
		return err
	}
	if *ready == "" || *n <= 0 || *parallel <= 0 {
		return errors.New("-ready FILE, -n > 0 and -parallel > 0 are required")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	start := time.Now()
	conns := make([]*imapclient.Client, *n)
	idles := make([]*imapclient.IdleCommand, *n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, *parallel)
	for w := range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				c, err := dialIMAP(*acct.imap, users[i%len(users)], *acct.password)
				if err == nil {
					conns[i] = c
					if _, err = c.Select("INBOX", nil).Wait(); err == nil {
						idles[i], err = c.Idle()
					}
				}
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("RESULT idle conns=%d setup_s=%s\n", *n, seconds(time.Since(start)))
	if err := os.WriteFile(*ready, []byte(fmt.Sprintln(*n)), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	// Hold until told to stop; a connection the server closes is an error
	// (the measure would be wrong).
	closed := make(chan int, *n)
	for i, c := range conns {
		go func() {
			<-c.Closed()
			closed <- i
		}()
	}
	select {
	case <-stop:
		return nil
	case i := <-closed:
		return fmt.Errorf("the server closed connection %d while idle", i)
	}
}
