package ldapd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/directory/ldapd"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// Synthetic directory: every name and identifier here is invented.
const (
	base        = "dc=demo,dc=mssante,dc=test"
	userAddr    = "claire.martin@demo.mssante.test"
	userPass    = "correct horse battery staple"
	remoteClair = "claire.martin@hopital-fictif.mssante.test"
	remoteMarc  = "marc.martinez@hopital-fictif.mssante.test"
	remoteHel   = "helene.dupre@cabinet-imaginaire.mssante.test"
	orgBox      = "secretariat.cardio@hopital-fictif.mssante.test"
	rppsClaire  = "10000000001"
	manyMartins = 12 // MARTINON1..12, for the size limit
)

// env is a running server over a real SQLite store.
type env struct {
	srv     *ldapd.Server
	store   *sqlite.Store
	ca      *pki.CA
	plain   string // host:port, StartTLS
	ldaps   string // host:port, LDAPS
	certDER []byte
	dir     *faultyDirectory
	// wantPanics is how many recovered panics the test expects.
	wantPanics int64
}

// faultyDirectory wraps the real store and panics on one query, to check
// that a handler's panic is recovered.
type faultyDirectory struct {
	*sqlite.Store
	panicOn string
}

func (d *faultyDirectory) SearchDirectory(ctx context.Context, q storage.DirectoryQuery) (storage.DirectoryPage, error) {
	if d.panicOn != "" && q.Name == d.panicOn {
		panic("injected fault for " + q.Name)
	}
	return d.Store.SearchDirectory(ctx, q)
}

func newEnv(t testing.TB, cfg ldapd.Config) *env {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.AddDomain(ctx, "demo.mssante.test"); err != nil {
		t.Fatal(err)
	}
	hash, err := authn.HashPassword(userPass, authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateAccount(ctx, userAddr, "Claire Martin", hash); err != nil {
		t.Fatal(err)
	}
	seed(t, store)
	e := &env{store: store, dir: &faultyDirectory{Store: store}}
	e.certDER = attachCertificate(t, store, remoteClair)

	e.ca, err = pki.NewCA("Relais LDAP Test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.IssueServer("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = pki.ServerTLSConfig(cert)
	if cfg.BaseDN == "" {
		cfg.BaseDN = base
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e.srv, err = ldapd.New(cfg, e.dir, authn.New(store, nil))
	if err != nil {
		t.Fatal(err)
	}
	lnPlain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnTLS, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.plain, e.ldaps = lnPlain.Addr().String(), lnTLS.Addr().String()
	errs := make(chan error, 2)
	go func() { errs <- e.srv.Serve(lnPlain) }()
	go func() { errs <- e.srv.ServeTLS(lnTLS) }()
	t.Cleanup(func() {
		if err := e.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for range 2 {
			// A test that ends at once (a skip) may close the server
			// before Serve started; Serve then returns net.ErrClosed.
			if err := <-errs; err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("Serve: %v", err)
			}
		}
		if got := e.srv.Panics(); got != e.wantPanics {
			t.Errorf("recovered panics = %d, want %d", got, e.wantPanics)
		}
	})
	return e
}

// seed fills the directory through ApplyDirectory as the importers do.
func seed(t testing.TB, store *sqlite.Store) {
	t.Helper()
	ctx := t.Context()
	hosp := storage.Organisation{ID: "1" + "990000001", FINESS: "990000001", Name: "Hôpital Fictif de Test",
		Address: storage.PostalAddress{Number: "12", StreetType: "Rue", Street: "des Essais", PostalCode: "75011", City: "Paris"}}
	cab := storage.Organisation{ID: "1" + "990000002", FINESS: "990000002", Name: "Cabinet Imaginaire",
		Address: storage.PostalAddress{Number: "3", StreetType: "Place", Street: "du Modèle", PostalCode: "69003", City: "Lyon"}}
	profs := []storage.Professional{
		{ID: "8" + rppsClaire, IDType: storage.IDTypeRPPS, Identifier: rppsClaire, CivilityCode: "DR", Civility: "Docteur",
			FamilyName: "MARTIN", GivenName: "Claire", ProfessionCode: "10", Profession: "Médecin", SpecialtyCode: "SM54", Specialty: "Médecine générale"},
		{ID: "810000000002", IDType: storage.IDTypeRPPS, Identifier: "10000000002", CivilityCode: "M",
			FamilyName: "MARTINEZ", GivenName: "Marc", ProfessionCode: "60", Profession: "Infirmier"},
		{ID: "810000000003", IDType: storage.IDTypeRPPS, Identifier: "10000000003", CivilityCode: "DR", Civility: "Docteur",
			FamilyName: "DUPRÉ", GivenName: "Hélène", ProfessionCode: "10", Profession: "Médecin", SpecialtyCode: "SM04", Specialty: "Cardiologie"},
	}
	acts := []storage.Activity{
		{Professional: "8" + rppsClaire, Key: "a1", Organisation: hosp.ID, PostalCode: "75011", City: "Paris"},
		{Professional: "810000000002", Key: "a1", Organisation: hosp.ID, PostalCode: "75011", City: "Paris"},
		{Professional: "810000000003", Key: "a1", Organisation: cab.ID, PostalCode: "69003", City: "Lyon"},
	}
	for i := 1; i <= manyMartins; i++ {
		id := fmt.Sprintf("81000000%04d", 100+i)
		profs = append(profs, storage.Professional{ID: id, IDType: storage.IDTypeRPPS, Identifier: id[1:],
			FamilyName: fmt.Sprintf("MARTINON%d", i), GivenName: "Paul", ProfessionCode: "10", Profession: "Médecin"})
	}
	if err := store.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceRPPS,
		Professionals: profs, Organisations: []storage.Organisation{hosp, cab}, Activities: acts}); err != nil {
		t.Fatal(err)
	}
	boxes := []storage.MailboxEntry{
		{Address: remoteClair, Type: storage.MailboxPersonal, Professional: "8" + rppsClaire, Organisation: hosp.ID,
			Service: "Médecine interne", FamilyName: "MARTIN", GivenName: "Claire", OrganisationName: hosp.Name, StructureAddress: hosp.Address},
		{Address: remoteMarc, Type: storage.MailboxPersonal, Professional: "810000000002", Organisation: hosp.ID,
			FamilyName: "MARTINEZ", GivenName: "Marc", OrganisationName: hosp.Name, StructureAddress: hosp.Address},
		{Address: remoteHel, Type: storage.MailboxPersonal, Professional: "810000000003", Organisation: cab.ID,
			FamilyName: "DUPRÉ", GivenName: "Hélène", OrganisationName: cab.Name, StructureAddress: cab.Address},
		{Address: orgBox, Type: storage.MailboxOrganisational, Organisation: hosp.ID, Service: "Cardiologie",
			Description: "Secrétariat de cardiologie", OrganisationName: hosp.Name, StructureAddress: hosp.Address},
	}
	for i := 1; i <= manyMartins; i++ {
		boxes = append(boxes, storage.MailboxEntry{Address: fmt.Sprintf("paul.martinon%d@cabinet-imaginaire.mssante.test", i),
			Type: storage.MailboxPersonal, Professional: fmt.Sprintf("81000000%04d", 100+i),
			FamilyName: fmt.Sprintf("MARTINON%d", i), GivenName: "Paul"})
	}
	if err := store.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceMSSante, Mailboxes: boxes}); err != nil {
		t.Fatal(err)
	}
}

// attachCertificate creates a self-signed S/MIME certificate for address
// and stores it; it returns the DER.
func attachCertificate(t testing.TB, store *sqlite.Store, address string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(42),
		Subject:        pkix.Name{CommonName: "Claire MARTIN (test)"},
		EmailAddresses: []string{address},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.AddDate(1, 0, 0),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if err := store.PutCertificate(t.Context(), storage.Certificate{Address: address, DER: der, Fingerprint: hex.EncodeToString(sum[:]),
		Subject: tmpl.Subject.String(), NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Source: storage.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	return der
}

func (e *env) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// dialStartTLS connects on the plain port and runs StartTLS.
func (e *env) dialStartTLS(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL("ldap://" + e.plain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.StartTLS(e.clientTLS()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	return c
}

func (e *env) dialBound(t testing.TB) *ldap.Conn {
	t.Helper()
	c := e.dialStartTLS(t)
	if err := c.Bind(userAddr, userPass); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return c
}

func search(c *ldap.Conn, baseDN string, scope int, sizeLimit int, filter string, attrs ...string) (*ldap.SearchResult, error) {
	return c.Search(ldap.NewSearchRequest(baseDN, scope, ldap.NeverDerefAliases, sizeLimit, 0, false, filter, attrs, nil))
}

func resultCode(err error) uint16 {
	var le *ldap.Error
	if errors.As(err, &le) {
		return le.ResultCode
	}
	return 0xffff
}

func mails(r *ldap.SearchResult) map[string]bool {
	out := map[string]bool{}
	if r == nil {
		return out
	}
	for _, e := range r.Entries {
		out[e.GetAttributeValue("mail")] = true
	}
	return out
}
