package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/relais-mssante/relais/storage"
)

// duplicateKey reports a unique_violation (SQLSTATE 23505).
func duplicateKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// AddDomain adds a served domain.
func (s *Store) AddDomain(ctx context.Context, name string) (storage.Domain, error) {
	d, err := storage.NormDomain(name)
	if err != nil {
		return storage.Domain{}, fmt.Errorf("postgres: add domain: %w", err)
	}
	now := time.Now().UTC()
	err = s.write(ctx, "add domain", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `INSERT INTO domains (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, d, now.UnixNano())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("domain %q: %w", d, storage.ErrExists)
		}
		return nil
	})
	if err != nil {
		return storage.Domain{}, err
	}
	return storage.Domain{Name: d, Created: now}, nil
}

// Domains lists the served domains by name.
func (s *Store) Domains(ctx context.Context) ([]storage.Domain, error) {
	var out []storage.Domain
	err := s.read(ctx, "domains", func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT name, created FROM domains ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d storage.Domain
			var created int64
			if err := rows.Scan(&d.Name, &created); err != nil {
				return err
			}
			d.Created = time.Unix(0, created).UTC()
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// HasDomain reports whether name is served.
func (s *Store) HasDomain(ctx context.Context, name string) (bool, error) {
	d, err := storage.NormDomain(name)
	if err != nil {
		return false, nil
	}
	var ok bool
	err = s.read(ctx, "has domain", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)`, d).Scan(&ok)
	})
	return ok, err
}

// CreateAccount creates an account and its storage.DefaultMailboxes,
// subscribed, with their special-use attributes (RFC 6154), and its entry in
// the directory (source local).
func (s *Store) CreateAccount(ctx context.Context, address, name, passwordHash string) (storage.Account, error) {
	canon, key, dom, err := storage.NormAddress(address)
	if err != nil {
		return storage.Account{}, fmt.Errorf("postgres: create account: %w", err)
	}
	now := time.Now().UTC()
	acct := storage.Account{Address: canon, Name: name, PasswordHash: passwordHash, Created: now}
	err = s.write(ctx, "create account", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)`, dom).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("domain %q: %w", dom, storage.ErrNotFound)
		}
		// Two nodes creating one address: the second waits for the first
		// to commit, then inserts nothing.
		err := tx.QueryRow(ctx, `INSERT INTO accounts (address, addr_key, domain, name, password_hash, created)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (addr_key) DO NOTHING RETURNING id`,
			canon, key, dom, name, passwordHash, now.UnixNano()).Scan(&acct.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("account %q: %w", canon, storage.ErrExists)
		} else if err != nil {
			return err
		}
		for _, m := range storage.DefaultMailboxes {
			if _, err := insertMailbox(ctx, tx, acct.ID, m.Name, m.SpecialUse, true, 1, 1); err != nil {
				return err
			}
		}
		// The account is an entry of the directory (source local).
		return insertLocalMailbox(ctx, tx, acct)
	})
	if err != nil {
		return storage.Account{}, err
	}
	return acct, nil
}

const accountColumns = `id, address, name, password_hash, created`

func scanAccount(row pgx.Row) (storage.Account, error) {
	var a storage.Account
	var created int64
	if err := row.Scan(&a.ID, &a.Address, &a.Name, &a.PasswordHash, &created); err != nil {
		return a, err
	}
	a.Created = time.Unix(0, created).UTC()
	return a, nil
}

// AccountByAddress finds an account, case-insensitively.
func (s *Store) AccountByAddress(ctx context.Context, address string) (storage.Account, error) {
	_, key, _, err := storage.NormAddress(address)
	if err != nil {
		return storage.Account{}, fmt.Errorf("postgres: account by address: %w", storage.ErrNotFound)
	}
	var a storage.Account
	err = s.read(ctx, "account by address", func(tx pgx.Tx) error {
		a, err = scanAccount(tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE addr_key = $1`, key))
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		return err
	})
	return a, err
}

// Accounts lists every account by address.
func (s *Store) Accounts(ctx context.Context) ([]storage.Account, error) {
	var out []storage.Account
	err := s.read(ctx, "accounts", func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY addr_key`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	return out, err
}

// SetPasswordHash replaces an account's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, id storage.AccountID, passwordHash string) error {
	return s.write(ctx, "set password hash", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		tag, err := tx.Exec(ctx, `UPDATE accounts SET password_hash = $1 WHERE id = $2`, passwordHash, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// lockAccount takes the account's row lock (FOR NO KEY UPDATE, which does
// not block the foreign-key checks of inserts that reference it), so that
// changes to the account's set of mailboxes (create, delete, rename) run one
// at a time across nodes, as they do in the SQLite store's single writer.
// A missing account is ErrNotFound.
func lockAccount(ctx context.Context, tx pgx.Tx, acct storage.AccountID) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, acct).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("account %d: %w", acct, storage.ErrNotFound)
	}
	return err
}
