package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/postgres"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// DatabaseFile is the SQLite database's name inside the data directory.
const DatabaseFile = "relais.db"

// storeLocation says where an installation keeps its data: the data
// directory (the CA, and the SQLite database unless Database is set) and,
// for installations of several nodes, the PostgreSQL database URL.
type storeLocation struct {
	Data     string
	Database string // postgres://...; empty: SQLite in Data
}

// relaisStore is what both stores offer: the storage contract and the
// queue counts the metrics read.
type relaisStore interface {
	storage.Store
	queueCounter
}

// openStore opens the installation's database, creating the data directory
// if needed. Admin commands use it while the server runs: SQLite in WAL mode
// takes one writer at a time across processes, PostgreSQL any number.
// maxMessage bounds what the store accepts (0: its default).
func openStore(loc storeLocation, log *slog.Logger, maxMessage int64) (relaisStore, error) {
	if err := os.MkdirAll(loc.Data, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if loc.Database != "" {
		if err := validDatabaseURL(loc.Database); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := postgres.Open(ctx, loc.Database, postgres.Options{Logger: log, MaxMessageSize: maxMessage})
		if err != nil {
			return nil, fmt.Errorf("opening the database %s: %w", redactURL(loc.Database), err)
		}
		return st, nil
	}
	st, err := sqlite.Open(filepath.Join(loc.Data, DatabaseFile), sqlite.Options{Logger: log, MaxMessageSize: maxMessage})
	if err != nil {
		return nil, fmt.Errorf("opening the database in %s: %w", loc.Data, err)
	}
	return st, nil
}

// validDatabaseURL accepts the PostgreSQL URLs relais can open.
func validDatabaseURL(u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "postgres" && pu.Scheme != "postgresql") {
		return fmt.Errorf("database %q: want a postgres:// URL (or nothing, for SQLite in the data directory)", redactURL(u))
	}
	return nil
}

// redactURL hides a password in a database URL, for messages and logs.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return pu.Redacted()
}

// dataFlag registers --data and --database, the installation's location.
// --database defaults to $RELAIS_DATABASE, so that the admin commands of a
// PostgreSQL installation need not repeat it.
func dataFlag(fs *flag.FlagSet) *storeLocation {
	loc := &storeLocation{}
	fs.StringVar(&loc.Data, "data", DefaultConfig().Data, "`DIR` of the installation (its CA; its database when on SQLite)")
	fs.StringVar(&loc.Database, "database", os.Getenv("RELAIS_DATABASE"), "PostgreSQL `URL` of the installation's database (default $RELAIS_DATABASE; empty: SQLite in --data)")
	return loc
}

func runDomainAdd(e *env, args []string) error {
	fs := newFlags(e, "admin domain add", "DOMAIN [--data DIR]", "add a mail domain served here")
	data := dataFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	domain, err := normalizeDomain(pos[0])
	if err != nil {
		return err
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.AddDomain(context.Background(), domain); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("domain %s already exists", domain)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "domain %s added\n", domain)
	return nil
}

func runDomainList(e *env, args []string) error {
	fs := newFlags(e, "admin domain list", "[--data DIR]", "list the domains served here")
	data := dataFlag(fs)
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	domains, err := st.Domains(context.Background())
	if err != nil {
		return err
	}
	for _, d := range domains {
		fmt.Fprintln(e.stdout, d.Name)
	}
	return nil
}

func runUserAdd(e *env, args []string) error {
	fs := newFlags(e, "admin user add", "ADDRESS [--name NAME] [--password-stdin] [--data DIR]",
		"create an account with the default folders (INBOX, Sent, Drafts, Trash, Junk, Archive); without --password-stdin a password is generated and printed")
	data := dataFlag(fs)
	name := fs.String("name", "", "display `NAME` of the account owner")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	address, err := normalizeAddress(pos[0])
	if err != nil {
		return err
	}
	password, generated, err := obtainPassword(e.stdin, *fromStdin)
	if err != nil {
		return err
	}
	hash, err := authn.HashPassword(password, authn.DefaultParams)
	if err != nil {
		return err
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.CreateAccount(context.Background(), address, *name, hash); err != nil {
		switch {
		case errors.Is(err, storage.ErrExists):
			return fmt.Errorf("account %s already exists", address)
		case errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("domain of %s is not served here: add it first with \"relais admin domain add\"", address)
		}
		return err
	}
	auditAdmin(e, st, auditUserAdd, "account:"+address, "")
	fmt.Fprintf(e.stdout, "account %s created\n", address)
	if generated {
		fmt.Fprintf(e.stdout, "password: %s\n", password)
	}
	return nil
}

func runUserList(e *env, args []string) error {
	fs := newFlags(e, "admin user list", "[--data DIR]", "list the accounts")
	data := dataFlag(fs)
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	accounts, err := st.Accounts(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tNAME\tCREATED")
	for _, a := range accounts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Address, a.Name, a.Created.UTC().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func runUserPasswd(e *env, args []string) error {
	fs := newFlags(e, "admin user passwd", "ADDRESS --password-stdin [--data DIR]", "set an account's password")
	data := dataFlag(fs)
	fromStdin := fs.Bool("password-stdin", false, "read the new password from the first line of standard input")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !*fromStdin {
		fs.Usage()
		return errUsage
	}
	password, _, err := obtainPassword(e.stdin, true)
	if err != nil {
		return err
	}
	hash, err := authn.HashPassword(password, authn.DefaultParams)
	if err != nil {
		return err
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	acct, err := st.AccountByAddress(ctx, pos[0])
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no account %s", pos[0])
		}
		return err
	}
	if err := st.SetPasswordHash(ctx, acct.ID, hash); err != nil {
		return err
	}
	auditAdmin(e, st, auditUserPasswd, "account:"+acct.Address, "")
	fmt.Fprintf(e.stdout, "password of %s changed\n", acct.Address)
	return nil
}

func orUsage(fs *flag.FlagSet, err error) error {
	if err != nil {
		return err
	}
	fs.Usage()
	return errUsage
}

// obtainPassword reads one line from r, or makes a random password.
func obtainPassword(r io.Reader, fromStdin bool) (password string, generated bool, err error) {
	if !fromStdin {
		return randomPassword(), true, nil
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("reading password: %w", err)
	}
	password = strings.TrimRight(line, "\r\n")
	if len(password) < 8 {
		return "", false, errors.New("password: at least 8 characters are required")
	}
	return password, false, nil
}

// randomPassword returns 16 characters from an alphabet without look-alikes
// (about 90 bits).
func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	return randomFrom(alphabet, 16)
}

func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	buf := make([]byte, 1)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		// Rejection sampling keeps the distribution uniform.
		if int(buf[0]) >= 256-256%len(alphabet) {
			continue
		}
		b[i] = alphabet[int(buf[0])%len(alphabet)]
		i++
	}
	return string(b)
}

// normalizeDomain lower-cases a domain and checks it is a plausible name.
func normalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") || strings.ContainsAny(d, " @/\\\t") {
		return "", fmt.Errorf("%q is not a domain name", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "", fmt.Errorf("%q is not a domain name", d)
		}
	}
	return d, nil
}

// normalizeAddress checks local@domain and lower-cases the domain.
func normalizeAddress(a string) (string, error) {
	a = strings.TrimSpace(a)
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at > 64 || strings.ContainsAny(a[:at], " \t<>\"(),:;[]\\") {
		return "", fmt.Errorf("%q is not a mail address (local@domain)", a)
	}
	domain, err := normalizeDomain(a[at+1:])
	if err != nil {
		return "", fmt.Errorf("%q is not a mail address: %w", a, err)
	}
	return a[:at] + "@" + domain, nil
}
