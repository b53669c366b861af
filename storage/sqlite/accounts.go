package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// normAddress is storage.NormAddress (queue.go uses it too).
var normAddress = storage.NormAddress

// AddDomain adds a served domain.
func (s *Store) AddDomain(ctx context.Context, name string) (storage.Domain, error) {
	d, err := storage.NormDomain(name)
	if err != nil {
		return storage.Domain{}, fmt.Errorf("sqlite: add domain: %w", err)
	}
	now := time.Now().UTC()
	err = s.write(ctx, "add domain", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE name = ?`, d).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("domain %q: %w", d, storage.ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO domains (name, created) VALUES (?, ?)`, d, unixNano(now))
		return err
	})
	if err != nil {
		return storage.Domain{}, err
	}
	return storage.Domain{Name: d, Created: now}, nil
}

// Domains lists the served domains by name.
func (s *Store) Domains(ctx context.Context) ([]storage.Domain, error) {
	var out []storage.Domain
	err := s.read(ctx, "domains", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, created FROM domains ORDER BY name`)
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
			d.Created = fromUnixNano(created)
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
	var n int
	err = s.read(ctx, "has domain", func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE name = ?`, d).Scan(&n)
	})
	return n > 0, err
}

// CreateAccount creates an account and its storage.DefaultMailboxes,
// subscribed, with their special-use attributes (RFC 6154).
func (s *Store) CreateAccount(ctx context.Context, address, name, passwordHash string) (storage.Account, error) {
	canon, key, dom, err := normAddress(address)
	if err != nil {
		return storage.Account{}, fmt.Errorf("sqlite: create account: %w", err)
	}
	now := time.Now().UTC()
	acct := storage.Account{Address: canon, Name: name, PasswordHash: passwordHash, Created: now}
	err = s.write(ctx, "create account", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE name = ?`, dom).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("domain %q: %w", dom, storage.ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE addr_key = ?`, key).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("account %q: %w", canon, storage.ErrExists)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (address, addr_key, domain, name, password_hash, created) VALUES (?, ?, ?, ?, ?, ?)`,
			canon, key, dom, name, passwordHash, unixNano(now))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		acct.ID = storage.AccountID(id)
		for _, m := range storage.DefaultMailboxes {
			if _, err := insertMailbox(ctx, tx, acct.ID, m.Name, m.SpecialUse, true); err != nil {
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

func scanAccount(row interface{ Scan(...any) error }) (storage.Account, error) {
	var a storage.Account
	var created int64
	if err := row.Scan(&a.ID, &a.Address, &a.Name, &a.PasswordHash, &created); err != nil {
		return a, err
	}
	a.Created = fromUnixNano(created)
	return a, nil
}

// AccountByAddress finds an account, case-insensitively.
func (s *Store) AccountByAddress(ctx context.Context, address string) (storage.Account, error) {
	_, key, _, err := normAddress(address)
	if err != nil {
		return storage.Account{}, fmt.Errorf("sqlite: account by address: %w", storage.ErrNotFound)
	}
	var a storage.Account
	err = s.read(ctx, "account by address", func(tx *sql.Tx) error {
		a, err = scanAccount(tx.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE addr_key = ?`, key))
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		return err
	})
	return a, err
}

// Accounts lists every account by address.
func (s *Store) Accounts(ctx context.Context) ([]storage.Account, error) {
	var out []storage.Account
	err := s.read(ctx, "accounts", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY addr_key`)
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
	return s.write(ctx, "set password hash", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = ? WHERE id = ?`, passwordHash, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}
