package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/directory/synth"

	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// demoUsers are the synthetic practitioners of the demo domain. The names
// are invented; none is a real professional.
var demoUsers = []struct{ local, name string }{
	{"claire.martin", "Claire Martin"},
	{"lucas.bernard", "Lucas Bernard"},
	{"ines.petit", "Inès Petit"},
	{"secretariat.chu", "Secrétariat médical CHU de démonstration"},
}

// demoDirectorySeed makes the demo directory the same on every machine.
const demoDirectorySeed = 2026

// demoDirectory is how big the demo's synthetic national files are: enough
// to try search, autocomplete and FHIR paging, small enough to import in
// well under a second.
var demoDirectory = []struct {
	format directory.Format
	rows   int
	write  func(io.Writer, synth.Options) error
}{
	{directory.FormatRPPS, 3000, synth.RPPS},
	{directory.FormatMSSante, 1500, synth.MSSante},
	{directory.FormatTrustList, 48, synth.TrustList},
}

// demoStore is what bootstrapDemo needs.
type demoStore interface {
	HasDomain(ctx context.Context, name string) (bool, error)
	AddDomain(ctx context.Context, name string) (storage.Domain, error)
	CreateAccount(ctx context.Context, address, name, passwordHash string) (storage.Account, error)
	directory.ImportStore
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
	if err := tw.Flush(); err != nil {
		return err
	}
	return importDemoDirectory(ctx, e, st)
}

// importDemoDirectory fills the directory with synthetic national files
// (invented people, synthetic identifiers, an invented trust list), through
// the same importer as the real files.
func importDemoDirectory(ctx context.Context, e *env, st directory.ImportStore) error {
	for _, f := range demoDirectory {
		var buf bytes.Buffer
		if err := f.write(&buf, synth.Options{Rows: f.rows, Seed: demoDirectorySeed}); err != nil {
			return fmt.Errorf("generating the demo %s file: %w", f.format, err)
		}
		sum, err := directory.Import(ctx, st, f.format, &buf, directory.Options{})
		if err != nil {
			return fmt.Errorf("importing the demo %s file: %w", f.format, err)
		}
		if sum.Rejected > 0 {
			return fmt.Errorf("importing the demo %s file: %d rows rejected, first: %s", f.format, sum.Rejected, sum.Details[0])
		}
	}
	fmt.Fprintf(e.stdout, "demo directory: synthetic professionals, addresses and trust list imported (try \"relais directory search mar\")\n")
	return nil
}
