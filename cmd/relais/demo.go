package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// demoUsers are the synthetic practitioners of the demo domain. The names
// are invented; none is a real professional.
var demoUsers = []struct{ local, name string }{
	{"claire.martin", "Dr Claire Martin (médecin généraliste)"},
	{"lucas.bernard", "Lucas Bernard (infirmier)"},
	{"ines.petit", "Inès Petit (pharmacienne)"},
	{"secretariat.chu", "Secrétariat médical, CHU de démonstration"},
}

// demoStore is what bootstrapDemo needs.
type demoStore interface {
	HasDomain(ctx context.Context, name string) (bool, error)
	AddDomain(ctx context.Context, name string) (storage.Domain, error)
	CreateAccount(ctx context.Context, address, name, passwordHash string) (storage.Account, error)
}

// bootstrapDemo creates the demo domain and its users the first time, and
// prints their passwords once: they are stored only as argon2id hashes.
func bootstrapDemo(ctx context.Context, e *env, st demoStore) error {
	has, err := st.HasDomain(ctx, DemoDomain)
	if err != nil {
		return err
	}
	if has {
		return nil
	}
	if _, err := st.AddDomain(ctx, DemoDomain); err != nil && !errors.Is(err, storage.ErrExists) {
		return err
	}
	fmt.Fprintf(e.stdout, "first start: created the demo domain %s; these passwords are shown only now:\n", DemoDomain)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, u := range demoUsers {
		password := randomPassword()
		hash, err := authn.HashPassword(password, authn.DefaultParams)
		if err != nil {
			return err
		}
		address := u.local + "@" + DemoDomain
		if _, err := st.CreateAccount(ctx, address, u.name, hash); err != nil {
			return fmt.Errorf("creating %s: %w", address, err)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", address, password, u.name)
	}
	return tw.Flush()
}
