package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/directory/synth"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
)

// demoUsers are the synthetic practitioners of the demo domain. The names
// are invented; none is a real professional.
var demoUsers = []struct {
	local, name    string
	given, surname string // a practitioner; an organisation mailbox has neither
	rpps           string // synthetic: 1000000000x is no one's RPPS number
}{
	{"claire.martin", "Claire Martin", "Claire", "MARTIN", "10000000001"},
	{"lucas.bernard", "Lucas Bernard", "Lucas", "BERNARD", "10000000002"},
	{"ines.petit", "Inès Petit", "Inès", "PETIT", "10000000003"},
	{"secretariat.chu", "Secrétariat médical CHU de démonstration", "", "", ""},
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
	certPublisher
}

// bootstrapDemo creates the demo domain and its users the first time, and
// prints their passwords once: they are stored only as argon2id hashes.
// At every start it makes sure each demo user has an S/MIME certificate
// (person, or organisation for the shared mailbox) published in the
// directory, and the domain its organisation certificate.
func bootstrapDemo(ctx context.Context, e *env, st demoStore, ca *pki.Authority) error {
	has, err := st.HasDomain(ctx, DemoDomain)
	if err != nil {
		return err
	}
	if !has {
		if err := createDemo(ctx, e, st); err != nil {
			return err
		}
	}
	return demoCertificates(ctx, st, ca)
}

// demoCertificates issues what the demo users sign and decrypt with,
// once.
func demoCertificates(ctx context.Context, st certPublisher, ca *pki.Authority) error {
	for _, u := range demoUsers {
		req := pki.Request{Kind: pki.KindPerson, Emails: []string{u.local + "@" + DemoDomain},
			GivenName: u.given, Surname: u.surname, RPPS: u.rpps, Title: "Médecin"}
		if u.rpps == "" {
			req = pki.Request{Kind: pki.KindOrganisation, Emails: req.Emails, CommonName: u.name}
		}
		if _, _, err := ensureIdentity(ctx, ca, st, req); err != nil {
			return fmt.Errorf("certificate of %s: %w", req.Emails[0], err)
		}
	}
	if _, err := ca.DomainIdentity(DemoDomain); errors.Is(err, pki.ErrNotFound) {
		_, err = ca.Issue(pki.Request{Kind: pki.KindOrganisation, DNSNames: []string{DemoDomain}, CommonName: "Relais démonstration"})
		if err != nil {
			return fmt.Errorf("organisation certificate of %s: %w", DemoDomain, err)
		}
	} else if err != nil {
		return err
	}
	return nil
}

func createDemo(ctx context.Context, e *env, st demoStore) error {
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
