package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// The API tokens hospital software presents to the documents API
// (Authorization: Bearer, RFC 6750 2.1). Only the SHA-256 of a token is
// stored: the secret is printed once, at creation.

// tokenPrefix marks Relais tokens, so that secret scanners and people
// recognise one.
const tokenPrefix = "rls_"

// tokenCommands are the API token commands; main.go lists them.
func tokenCommands() []command {
	return []command{
		{"admin token create", "ADDRESS --name NAME [--expires DURATION]", "issue an API token for the documents API, acting as ADDRESS; the secret is printed once", runTokenCreate},
		{"admin token list", "", "list the API tokens (never their secrets)", runTokenList},
		{"admin token revoke", "ID", "revoke an API token for good", runTokenRevoke},
	}
}

// newTokenSecret is "rls_" and 256 random bits, base64url (RFC 4648 5)
// without padding: a b64token (RFC 6750 2.1).
func newTokenSecret() (string, string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("drawing a token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(sum[:]), nil
}

// parseLifetime reads a Go duration ("720h") or a number of days ("90d").
func parseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 36600 {
			return 0, fmt.Errorf("--expires %q: a number of days (90d) or a duration (720h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: a number of days (90d) or a duration (720h)", s)
	}
	return d, nil
}

func runTokenCreate(e *env, args []string) error {
	fs := newFlags(e, "admin token create", "ADDRESS --name NAME [--expires DURATION] [--data DIR]",
		"issue an API token for the documents API, acting as the account ADDRESS; the secret is printed once, only its hash is kept")
	data := dataFlag(fs)
	name := fs.String("name", "", "`NAME` of the software that will use it (\"DPI CH Exemple\")")
	expires := fs.String("expires", "", "lifetime: a number of days (`DURATION` 90d) or a Go duration (720h); never expires when absent")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || strings.TrimSpace(*name) == "" {
		fs.Usage()
		return errUsage
	}
	var lifetime time.Duration
	if *expires != "" {
		if lifetime, err = parseLifetime(*expires); err != nil {
			return err
		}
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	acct, err := st.AccountByAddress(ctx, pos[0])
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no account %s (create it with \"relais admin user add\")", pos[0])
	}
	if err != nil {
		return err
	}
	secret, hash, err := newTokenSecret()
	if err != nil {
		return err
	}
	tok := storage.APIToken{Account: acct.ID, Name: strings.TrimSpace(*name), Hash: hash}
	if lifetime > 0 {
		tok.Expires = time.Now().Add(lifetime).UTC().Truncate(time.Second)
	}
	tok, err = st.CreateAPIToken(ctx, tok)
	if errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("--name must be one line of at most 200 bytes")
	}
	if err != nil {
		return err
	}
	exp := "never expires"
	if !tok.Expires.IsZero() {
		exp = "expires " + tok.Expires.Format("2006-01-02 15:04 MST")
	}
	auditAdmin(e, st, auditTokenCreate, "token:"+strconv.FormatInt(tok.ID, 10), "for "+acct.Address)
	fmt.Fprintf(e.stdout, "token %d created for %s (%s), %s\n", tok.ID, acct.Address, tok.Name, exp)
	fmt.Fprintf(e.stdout, "token: %s\n", secret)
	fmt.Fprintln(e.stdout, "Keep it now: it is not stored and cannot be shown again. Use it as \"Authorization: Bearer <token>\".")
	return nil
}

func runTokenList(e *env, args []string) error {
	fs := newFlags(e, "admin token list", "[--data DIR]", "list the API tokens (never their secrets)")
	data := dataFlag(fs)
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return orUsage(fs, err)
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	toks, err := st.APITokens(context.Background())
	if err != nil {
		return err
	}
	return printTokens(e.stdout, toks, time.Now())
}

func printTokens(w io.Writer, toks []storage.APIToken, now time.Time) error {
	if len(toks) == 0 {
		fmt.Fprintln(w, "no API tokens")
		return nil
	}
	day := func(t time.Time, zero string) string {
		if t.IsZero() {
			return zero
		}
		return t.UTC().Format("2006-01-02 15:04")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACCOUNT\tNAME\tSTATE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range toks {
		state := "active"
		switch {
		case t.Revoked:
			state = "revoked"
		case !t.Expires.IsZero() && !now.Before(t.Expires):
			state = "expired"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Address, t.Name, state, day(t.Created, "-"),
			day(t.Expires, "never"), day(t.LastUsed, "never"))
	}
	return tw.Flush()
}

func runTokenRevoke(e *env, args []string) error {
	fs := newFlags(e, "admin token revoke", "ID [--data DIR]", "revoke an API token for good (see relais admin token list)")
	data := dataFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	id, err := strconv.ParseInt(strings.TrimSpace(pos[0]), 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("%q is not a token id (see relais admin token list)", pos[0])
	}
	st, err := openStore(*data, discardLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RevokeAPIToken(context.Background(), id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no API token %d", id)
		}
		return err
	}
	auditAdmin(e, st, auditTokenRevoke, "token:"+strconv.FormatInt(id, 10), "")
	fmt.Fprintf(e.stdout, "token %d revoked\n", id)
	return nil
}
