package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/relais-mssante/relais/storage"
)

// Actions of the administration commands in the audit log (the services
// write their own: "chat.send", "chat.room.read", "chat.member.add"...).
const (
	auditUserAdd     = "admin.user.add"
	auditUserPasswd  = "admin.user.passwd"
	auditTokenCreate = "admin.token.create"
	auditTokenRevoke = "admin.token.revoke"
	auditPKIRevoke   = "admin.pki.revoke"
)

// defaultAuditLimit is how many entries relais audit prints without
// --limit.
const defaultAuditLimit = 100

func auditCommands() []command {
	return []command{
		{"audit", "[--account ADDR] [--action A] [--since T] [--until T] [--limit N] [--json]",
			"show the audit log: who did what in the chat (rooms, messages, documents, refusals) and the administrators' actions", runAudit},
	}
}

func runAudit(e *env, args []string) error {
	fs := newFlags(e, "audit", "[--account ADDR] [--action A] [--outcome O] [--since T] [--until T] [--limit N] [--json] [--data DIR]",
		"show the audit log, oldest entry first: who did what in the chat (rooms, messages, documents, refusals) and the administrators' actions; "+
			"T is a duration back from now (24h, 7d) or a time (RFC 3339: 2026-11-23T14:00:00Z, or a date 2026-11-23)")
	data := dataFlag(fs)
	account := fs.String("account", "", "entries of the account `ADDR` only")
	action := fs.String("action", "", "entries of the `ACTION` only (chat.send, chat.room.read, admin.user.add...)")
	outcome := fs.String("outcome", "", "entries with the `OUTCOME` only: ok, denied or error")
	since := fs.String("since", "", "entries at or after `T`")
	until := fs.String("until", "", "entries before `T`")
	limit := fs.Int("limit", defaultAuditLimit, "print at most `N` entries (0: all)")
	asJSON := fs.Bool("json", false, "print one JSON object per line instead of a table")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *limit < 0 {
		fs.Usage()
		return errUsage
	}
	now := time.Now()
	var f storage.AuditFilter
	f.Action, f.Outcome = strings.TrimSpace(*action), strings.TrimSpace(*outcome)
	if *since != "" {
		if f.Since, err = parseAuditTime(*since, now); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
	}
	if *until != "" {
		if f.Until, err = parseAuditTime(*until, now); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return errors.New("--until must be after --since")
	}

	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	accounts, err := st.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("audit: listing accounts: %w", err)
	}
	addresses := make(map[storage.AccountID]string, len(accounts))
	for _, a := range accounts {
		addresses[a.ID] = a.Address
	}
	if *account != "" {
		a, err := st.AccountByAddress(ctx, strings.TrimSpace(*account))
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no account %s", *account)
		}
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		f.Account = a.ID
	}

	out := newAuditPrinter(e.stdout, *asJSON, addresses)
	printed := 0
	more := false
	for {
		page := storage.MaxChatPage
		if *limit > 0 {
			// One more than needed tells whether entries were left out.
			page = min(page, *limit-printed+1)
		}
		f.Limit = page
		entries, err := st.Audit(ctx, f)
		if err != nil {
			return fmt.Errorf("audit: reading the log: %w", err)
		}
		for _, en := range entries {
			if *limit > 0 && printed == *limit {
				more = true
				break
			}
			if err := out.print(en); err != nil {
				return err
			}
			printed++
			f.AfterID = en.ID
		}
		if more || len(entries) < page {
			break
		}
	}
	if err := out.flush(); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(e.stderr, "relais audit: more than %d entries; narrow with --since/--until, or raise --limit\n", *limit)
	}
	return nil
}

// parseAuditTime reads a duration back from now ("24h", "7d", "90m") or an
// instant (RFC 3339, or a date: midnight UTC).
func parseAuditTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration back from now is positive", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want a duration (24h, 7d) or a time (2026-11-23T14:00:00Z, 2026-11-23)", s)
}

// auditPrinter writes entries as a table or as JSON lines.
type auditPrinter struct {
	json      *json.Encoder
	table     *tabwriter.Writer
	addresses map[storage.AccountID]string
	header    bool
}

func newAuditPrinter(w io.Writer, asJSON bool, addresses map[storage.AccountID]string) *auditPrinter {
	p := &auditPrinter{addresses: addresses}
	if asJSON {
		p.json = json.NewEncoder(w)
	} else {
		p.table = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	}
	return p
}

// auditLine is the JSON form of an entry.
type auditLine struct {
	ID      storage.AuditID   `json:"id"`
	Time    time.Time         `json:"time"`
	Account storage.AccountID `json:"account"`
	Address string            `json:"address,omitempty"`
	Action  string            `json:"action"`
	Object  string            `json:"object,omitempty"`
	Outcome string            `json:"outcome"`
	Detail  string            `json:"detail,omitempty"`
}

func (p *auditPrinter) print(en storage.AuditEntry) error {
	addr := p.addresses[en.Account]
	if p.json != nil {
		return p.json.Encode(auditLine{ID: en.ID, Time: en.Time.UTC(), Account: en.Account, Address: addr,
			Action: en.Action, Object: en.Object, Outcome: en.Outcome, Detail: en.Detail})
	}
	if !p.header {
		p.header = true
		fmt.Fprintln(p.table, "ID\tTIME\tACCOUNT\tACTION\tOBJECT\tOUTCOME\tDETAIL")
	}
	who := addr
	switch {
	case en.Account == 0:
		who = "-"
	case who == "":
		who = "#" + strconv.FormatInt(int64(en.Account), 10) // a deleted account
	}
	_, err := fmt.Fprintf(p.table, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", en.ID, en.Time.UTC().Format("2006-01-02 15:04:05"),
		cell(who), cell(en.Action), cell(en.Object), cell(en.Outcome), cell(en.Detail))
	return err
}

func (p *auditPrinter) flush() error {
	if p.table == nil {
		return nil
	}
	if !p.header {
		fmt.Fprintln(p.table, "(no entry)")
	}
	return p.table.Flush()
}

// cell makes a field safe for one table cell: control characters (tabs,
// newlines, terminal escapes from client-supplied text) become spaces or
// "?", and an empty field "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return '?'
		}
		return r
	}, s)
}

// auditAdmin records an administration command in the audit log. The
// command runs with access to the data directory, not as an account:
// Account is 0 and Detail names the operating-system user. The action has
// happened by then, so a failure to record it is reported on stderr
// without failing the command.
func auditAdmin(e *env, st storage.AuditStore, action, object, detail string) {
	by := "cli"
	if u, err := user.Current(); err == nil {
		by = "cli user " + u.Username
	}
	if detail != "" {
		by += "; " + detail
	}
	_, err := st.AppendAudit(context.Background(), storage.AuditEntry{Action: action, Object: object, Outcome: storage.AuditOK, Detail: by})
	if err != nil {
		fmt.Fprintf(e.stderr, "relais: warning: %s was done but not recorded in the audit log: %v\n", action, err)
	}
}

// auditAdminLocation opens the store of loc to record an administration
// command that does not otherwise use it (pki revoke).
func auditAdminLocation(e *env, loc storeLocation, action, object, detail string) {
	st, err := openStore(loc, discardLogger(), 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "relais: warning: %s was done but not recorded in the audit log: %v\n", action, err)
		return
	}
	defer st.Close()
	auditAdmin(e, st, action, object, detail)
}
