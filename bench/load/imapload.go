package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The commands of the mixed workload, in the order of one round.
var imapOps = []string{"SELECT", "FETCH-ENVELOPES", "FETCH-BODY", "SEARCH", "STORE"}

// runIMAP runs the mixed workload: each client logs in to one of the
// accounts (in turn) and repeats, until the duration is over, the round a
// mail client makes: SELECT INBOX, FETCH the envelopes and flags of the
// 50 newest messages, FETCH one random message's body, SEARCH a subject
// word, STORE a flag on one random message. It reports the operations per
// second of all clients together and p50/p99 per command.
func runIMAP(args []string) error {
	fs := flag.NewFlagSet("imap", flag.ExitOnError)
	acct := addAccountFlags(fs)
	clients := fs.Int("clients", 50, "concurrent IMAP clients")
	duration := fs.Duration("duration", 30*time.Second, "how long the clients run")
	fs.Parse(args)
	users, err := acct.check()
	if err != nil {
		return err
	}

	// Log every client in before the clock starts.
	conns := make([]*imapclient.Client, *clients)
	for i := range conns {
		if conns[i], err = dialIMAP(*acct.imap, users[i%len(users)], *acct.password); err != nil {
			return err
		}
		defer conns[i].Close()
	}

	lat := make([]map[string][]time.Duration, *clients)
	errs := make([]error, *clients)
	start := time.Now()
	deadline := start.Add(*duration)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i], errs[i] = imapRounds(c, uint64(i), deadline)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	all := map[string][]time.Duration{}
	total := 0
	for _, l := range lat {
		for op, ds := range l {
			all[op] = append(all[op], ds...)
			total += len(ds)
		}
	}
	fmt.Printf("RESULT imap clients=%d duration_s=%s ops=%d ops_per_s=%.1f\n",
		*clients, seconds(elapsed), total, float64(total)/elapsed.Seconds())
	for _, op := range imapOps {
		ds := all[op]
		fmt.Printf("RESULT imap_cmd cmd=%s count=%d p50_ms=%.2f p99_ms=%.2f\n",
			op, len(ds), ms(percentile(ds, 50)), ms(percentile(ds, 99)))
	}
	return nil
}

// imapRounds runs rounds on c until deadline and returns each command's
// latencies.
func imapRounds(c *imapclient.Client, seed uint64, deadline time.Time) (map[string][]time.Duration, error) {
	r := rand.New(rand.NewPCG(seed, 11))
	lat := map[string][]time.Duration{}
	timed := func(op string, f func() error) error {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("imap: %s: %w", op, err)
		}
		lat[op] = append(lat[op], time.Since(t))
		return nil
	}
	for time.Now().Before(deadline) {
		var n uint32
		err := timed("SELECT", func() error {
			mb, err := c.Select("INBOX", nil).Wait()
			if err == nil {
				n = mb.NumMessages
			}
			return err
		})
		if err != nil {
			return lat, err
		}
		if n == 0 {
			return lat, errors.New("imap: INBOX is empty: run ingest first")
		}
		var newest imap.SeqSet
		newest.AddRange(max(1, n-49), n)
		if err := timed("FETCH-ENVELOPES", func() error {
			_, err := c.Fetch(newest, &imap.FetchOptions{Envelope: true, Flags: true, UID: true, RFC822Size: true}).Collect()
			return err
		}); err != nil {
			return lat, err
		}
		if err := timed("FETCH-BODY", func() error {
			msgs, err := c.Fetch(imap.SeqSetNum(1+r.Uint32N(n)), &imap.FetchOptions{
				UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err == nil && (len(msgs) != 1 || len(msgs[0].BodySection) != 1) {
				err = errors.New("no body returned")
			}
			return err
		}); err != nil {
			return lat, err
		}
		if err := timed("SEARCH", func() error {
			word := fmt.Sprintf("token%03d", r.IntN(subjectTokens))
			_, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: word}}}, nil).Wait()
			return err
		}); err != nil {
			return lat, err
		}
		op := imap.StoreFlagsAdd
		if r.IntN(2) == 0 {
			op = imap.StoreFlagsDel
		}
		if err := timed("STORE", func() error {
			_, err := c.Store(imap.SeqSetNum(1+r.Uint32N(n)), &imap.StoreFlags{Op: op, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
			return err
		}); err != nil {
			return lat, err
		}
	}
	return lat, nil
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
