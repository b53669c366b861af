package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/storage"
)

// queueCommands are the outbound queue's commands; main.go lists them.
func queueCommands() []command {
	return []command{
		{"queue list", "[--data DIR]", "list the outbound queue: each recipient's state, attempts, next attempt and last error", runQueueList},
		{"queue retry", "ID|--all", "make a queued message (or every one) due now", runQueueRetry},
		{"queue drop", "ID [--no-dsn] [--reason TEXT]", "remove a message from the queue; its sender gets a DSN unless --no-dsn", runQueueDrop},
	}
}

func runQueueList(e *env, args []string) error {
	fs := newFlags(e, "queue list", "[--data DIR]", "list the outbound queue: each recipient's state, attempts, next attempt and last error")
	data := dataFlag(fs)
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	return printQueue(e.stdout, st, time.Now())
}

// printQueue writes one line per recipient; the entry's id, age and sender
// on its first line only.
func printQueue(w io.Writer, st interface {
	QueueEntries(ctx context.Context, fn func(storage.QueueEntry) error) error
}, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSENDER\tRECIPIENT\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	n := 0
	err := st.QueueEntries(context.Background(), func(q storage.QueueEntry) error {
		n++
		sender := q.Sender
		if sender == "" {
			sender = "<>"
		}
		for i, r := range q.Recipients {
			id, age, from := "", "", ""
			if i == 0 {
				id, age, from = strconv.FormatInt(int64(q.ID), 10), formatAge(now.Sub(q.Created)), sender
			}
			next := "-"
			if r.State == storage.QueuePending {
				next = "now"
				if r.NextAttempt.After(now) {
					next = "in " + formatAge(r.NextAttempt.Sub(now))
				}
				if !q.LeaseUntil.IsZero() && q.LeaseUntil.After(now) {
					next = "in progress"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, age, from, r.Address, r.State, r.Attempts, next, shorten(r.LastError, 80))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(w, "the queue is empty")
		return nil
	}
	return tw.Flush()
}

// formatAge is a duration as an administrator reads it: 45s, 12m, 3h20m, 2d4h.
func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}

func parseQueueID(s string) (storage.QueueID, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a queue id (see relais queue list)", s)
	}
	return storage.QueueID(n), nil
}

func runQueueRetry(e *env, args []string) error {
	fs := newFlags(e, "queue retry", "ID|--all [--data DIR]", "make a queued message (or every one) due now; a running server picks it up at its next poll")
	data := dataFlag(fs)
	all := fs.Bool("all", false, "retry every queued message")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if (*all && len(pos) != 0) || (!*all && len(pos) != 1) {
		fs.Usage()
		return errUsage
	}
	var ids []storage.QueueID
	if !*all {
		id, err := parseQueueID(pos[0])
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	if *all {
		err := st.QueueEntries(ctx, func(q storage.QueueEntry) error {
			ids = append(ids, q.ID)
			return nil
		})
		if err != nil {
			return err
		}
	}
	now := time.Now()
	done := 0
	for _, id := range ids {
		err := st.RetryQueue(ctx, id, now)
		if errors.Is(err, storage.ErrNotFound) {
			if *all {
				continue // delivered meanwhile
			}
			return fmt.Errorf("no queue entry %d", id)
		}
		if err != nil {
			return err
		}
		done++
	}
	fmt.Fprintf(e.stdout, "%d %s due now\n", done, plural(done, "entry", "entries"))
	return nil
}

func runQueueDrop(e *env, args []string) error {
	fs := newFlags(e, "queue drop", "ID [--no-dsn] [--reason TEXT] [--config FILE] [--data DIR]",
		"remove a message from the queue: its pending recipients are marked failed and its sender gets a DSN unless --no-dsn")
	data := dataFlag(fs)
	noDSN := fs.Bool("no-dsn", false, "do not send the sender a delivery status notification")
	reason := fs.String("reason", "removed from the queue by the administrator", "`TEXT` given to the sender as the diagnostic")
	configPath := fs.String("config", "", "configuration `FILE` (its hostname names the reporting server in the DSN)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	id, err := parseQueueID(pos[0])
	if err != nil {
		return err
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		if cfg, err = LoadConfig(*configPath); err != nil {
			return err
		}
		dataSet, databaseSet := false, false
		fs.Visit(func(f *flag.Flag) {
			dataSet = dataSet || f.Name == "data"
			databaseSet = databaseSet || f.Name == "database"
		})
		if !dataSet {
			data.Data = cfg.Data
		}
		if !databaseSet && cfg.Database != "" {
			data.Database = cfg.Database
		}
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	err = queue.Drop(context.Background(), st, cfg.Hostname, id, *reason, !*noDSN)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no queue entry %d", id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "queue entry %d dropped\n", id)
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
