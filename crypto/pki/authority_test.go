package pki

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RSA generation is slow: the tests draw keys from a pool made once.
func TestMain(m *testing.M) {
	pool := make([]*rsa.PrivateKey, 12)
	var wg sync.WaitGroup
	for i := range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := rsa.GenerateKey(rand.Reader, KeyBits)
			if err != nil {
				panic(err)
			}
			pool[i] = k
		}()
	}
	wg.Wait()
	var next atomic.Int64
	newRSAKey = func() (*rsa.PrivateKey, error) {
		return pool[int(next.Add(1))%len(pool)], nil
	}
	defaultKDF = kdfParams{Time: 1, Memory: 1024, Threads: 1}
	os.Exit(m.Run())
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions(dir string) Options {
	return Options{Dir: dir, BaseURL: "http://127.0.0.1:9", Logger: quietLogger()}
}

func newTestAuthority(t *testing.T) *Authority {
	t.Helper()
	a, err := Init(testOptions(filepath.Join(t.TempDir(), "pki")), "Hôpital de Démonstration")
	require.NoError(t, err)
	return a
}

const (
	personAddr = "claire.martin@demo.mssante.test"
	orgAddr    = "secretariat.chu@demo.mssante.test"
	testRPPS   = "10000000001"
)

func issuePerson(t *testing.T, a *Authority) Certificate {
	t.Helper()
	c, err := a.Issue(Request{Kind: KindPerson, Emails: []string{personAddr}, RPPS: testRPPS, GivenName: "Claire", Surname: "MARTIN", Title: "Médecin"})
	require.NoError(t, err)
	return c
}

func TestHierarchyShape(t *testing.T) {
	a := newTestAuthority(t)
	root, err := a.CA(CARoot)
	require.NoError(t, err)
	orgs, _ := a.CA(CAOrganisations)
	pers, _ := a.CA(CAPersonnes)

	assert.Equal(t, "AC RACINE RELAIS HÔPITAL DE DÉMONSTRATION", root.Subject.CommonName)
	assert.Equal(t, "AC RELAIS HÔPITAL DE DÉMONSTRATION ORGANISATIONS", orgs.Subject.CommonName)
	assert.Equal(t, "AC RELAIS HÔPITAL DE DÉMONSTRATION PERSONNES", pers.Subject.CommonName)
	assert.Equal(t, []string{"FR"}, root.Subject.Country)
	assert.True(t, root.IsCA)
	assert.Equal(t, 1, root.MaxPathLen)
	assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, root.KeyUsage)
	for _, inter := range []*x509.Certificate{orgs, pers} {
		assert.True(t, inter.IsCA)
		assert.True(t, inter.MaxPathLenZero)
		assert.Equal(t, 0, inter.MaxPathLen)
		assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, inter.KeyUsage)
		assert.Equal(t, root.SubjectKeyId, inter.AuthorityKeyId)
		assert.Equal(t, []string{"http://127.0.0.1:9/pki/crl/racine.crl"}, inter.CRLDistributionPoints)
		require.NoError(t, inter.CheckSignatureFrom(root))
	}

	person := issuePerson(t, a)
	org, err := a.Issue(Request{Kind: KindOrganisation, Emails: []string{orgAddr}, CommonName: "Secrétariat médical"})
	require.NoError(t, err)
	server, err := a.Issue(Request{Kind: KindServer, DNSNames: []string{"mail.demo.mssante.test", "127.0.0.1"}})
	require.NoError(t, err)

	cases := []struct {
		c       Certificate
		issuer  *x509.Certificate
		crl     string
		ekus    []x509.ExtKeyUsage
		subject string
	}{
		{person, pers, "personnes", []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, "SN=MARTIN+GN=Claire+CN=810000000001,title=Médecin,C=FR"},
		{org, orgs, "organisations", []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, "CN=Secrétariat médical,O=Hôpital de Démonstration,C=FR"},
		{server, orgs, "organisations", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "CN=mail.demo.mssante.test,O=Hôpital de Démonstration,C=FR"},
	}
	for _, tc := range cases {
		c := tc.c.Certificate
		assert.Equal(t, tc.subject, tc.c.Subject)
		assert.False(t, c.IsCA)
		assert.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, c.KeyUsage)
		assert.Equal(t, tc.ekus, c.ExtKeyUsage)
		assert.Equal(t, tc.issuer.SubjectKeyId, c.AuthorityKeyId)
		assert.NotEmpty(t, c.SubjectKeyId)
		assert.Equal(t, []string{"http://127.0.0.1:9/pki/crl/" + tc.crl + ".crl"}, c.CRLDistributionPoints)
		assert.Equal(t, []*x509.Certificate{tc.issuer}, tc.c.Chain)
		chains, err := c.Verify(x509.VerifyOptions{Roots: a.Anchors(), Intermediates: a.Intermediates(), KeyUsages: tc.ekus})
		require.NoError(t, err)
		assert.Len(t, chains[0], 3)
		assert.Equal(t, StatusValid, tc.c.Status)
	}
	assert.Equal(t, []string{personAddr}, person.Certificate.EmailAddresses)
	assert.Equal(t, []string{orgAddr}, org.Certificate.EmailAddresses)
	assert.Equal(t, []string{"mail.demo.mssante.test"}, server.Certificate.DNSNames)
	assert.Equal(t, "127.0.0.1", server.Certificate.IPAddresses[0].String())

	_, err = a.Issue(Request{Kind: KindPerson, Emails: []string{personAddr}, RPPS: "123"})
	assert.ErrorContains(t, err, "RPPS")
	_, err = a.Issue(Request{Kind: KindServer})
	assert.Error(t, err)
	_, err = a.Issue(Request{Kind: KindOrganisation, Emails: []string{"not an address"}})
	assert.Error(t, err)
}

func writePEM(t *testing.T, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(certPEM(c))
	}
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
	return p
}

func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// TestOpenSSLAcceptsOutput has OpenSSL check the chains, the purposes, the
// CRLs and a revocation.
func TestOpenSSLAcceptsOutput(t *testing.T) {
	a := newTestAuthority(t)
	dir := t.TempDir()
	root, orgs, pers := a.Root(), mustCA(t, a, CAOrganisations), mustCA(t, a, CAPersonnes)
	rootFile := writePEM(t, dir, "root.pem", root)
	person := issuePerson(t, a)
	server, err := a.Issue(Request{Kind: KindServer, DNSNames: []string{"mail.demo.mssante.test"}})
	require.NoError(t, err)

	for _, tc := range []struct {
		c       Certificate
		inter   *x509.Certificate
		purpose string
	}{{person, pers, "smimesign"}, {person, pers, "smimeencrypt"}, {server, orgs, "sslserver"}, {server, orgs, "sslclient"}} {
		leaf := writePEM(t, dir, tc.c.Serial+".pem", tc.c.Certificate)
		inter := writePEM(t, dir, "inter.pem", tc.inter)
		out, err := openssl(t, "verify", "-x509_strict", "-purpose", tc.purpose, "-CAfile", rootFile, "-untrusted", inter, leaf)
		require.NoError(t, err, out)
		assert.Contains(t, out, ": OK")
	}

	_, err = a.Revoke(person.Serial, ReasonKeyCompromise)
	require.NoError(t, err)
	crlDER, err := a.CRL(CAPersonnes)
	require.NoError(t, err)
	crlFile := filepath.Join(dir, "personnes.crl")
	require.NoError(t, os.WriteFile(crlFile, crlDER, 0o644))
	chainFile := writePEM(t, dir, "chain.pem", pers, root)
	out, err := openssl(t, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", chainFile, "-noout", "-text")
	require.NoError(t, err, out)
	assert.Contains(t, out, "verify OK")
	assert.Contains(t, out, "Key Compromise")
	assert.Contains(t, strings.ToUpper(out), strings.ToUpper(person.Serial))

	rootCRL, err := a.CRL(CARoot)
	require.NoError(t, err)
	rootCRLFile := filepath.Join(dir, "racine.crl")
	require.NoError(t, os.WriteFile(rootCRLFile, rootCRL, 0o644))
	// With the CRLs of the whole chain, OpenSSL finds the revocation.
	pemCRLs := filepath.Join(dir, "crls.pem")
	var crls bytes.Buffer
	crls.Write(pemBlock("X509 CRL", crlDER))
	crls.Write(pemBlock("X509 CRL", rootCRL))
	require.NoError(t, os.WriteFile(pemCRLs, crls.Bytes(), 0o644))
	leaf := writePEM(t, dir, "person.pem", person.Certificate)
	inter := writePEM(t, dir, "inter.pem", pers)
	out, err = openssl(t, "verify", "-crl_check_all", "-CRLfile", pemCRLs, "-CAfile", rootFile, "-untrusted", inter, leaf)
	require.Error(t, err, out)
	assert.Contains(t, out, "certificate revoked")
	serverFile := writePEM(t, dir, "server.pem", server.Certificate)
	orgCRL, err := a.CRL(CAOrganisations)
	require.NoError(t, err)
	crls.Reset()
	crls.Write(pemBlock("X509 CRL", orgCRL))
	crls.Write(pemBlock("X509 CRL", rootCRL))
	require.NoError(t, os.WriteFile(pemCRLs, crls.Bytes(), 0o644))
	out, err = openssl(t, "verify", "-crl_check_all", "-CRLfile", pemCRLs, "-CAfile", rootFile, "-untrusted", writePEM(t, dir, "orgs.pem", orgs), serverFile)
	require.NoError(t, err, out)
}

func mustCA(t *testing.T, a *Authority, name string) *x509.Certificate {
	t.Helper()
	c, err := a.CA(name)
	require.NoError(t, err)
	return c
}

func TestRevokeListsOnCRLAndOwnCheck(t *testing.T) {
	a := newTestAuthority(t)
	person := issuePerson(t, a)
	other, err := a.Issue(Request{Kind: KindOrganisation, Emails: []string{orgAddr}})
	require.NoError(t, err)
	pers, orgs := mustCA(t, a, CAPersonnes), mustCA(t, a, CAOrganisations)

	st, err := a.CheckRevocation(context.Background(), person.Certificate, pers)
	require.NoError(t, err)
	assert.Equal(t, RevocationGood, st.State)

	revoked, err := a.Revoke(person.Serial, ReasonAffiliationChanged)
	require.NoError(t, err)
	assert.Equal(t, StatusRevoked, revoked.Status)
	_, err = a.Revoke(person.Serial, ReasonKeyCompromise)
	assert.ErrorContains(t, err, "already revoked")
	_, err = a.Revoke("abcdef", ReasonKeyCompromise)
	assert.ErrorIs(t, err, ErrNotFound)

	der, err := a.CRL(CAPersonnes)
	require.NoError(t, err)
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(pers))
	require.Len(t, crl.RevokedCertificateEntries, 1)
	assert.Equal(t, person.Certificate.SerialNumber, crl.RevokedCertificateEntries[0].SerialNumber)
	assert.Equal(t, int(ReasonAffiliationChanged), crl.RevokedCertificateEntries[0].ReasonCode)
	assert.Equal(t, pers.SubjectKeyId, crl.AuthorityKeyId)
	assert.Equal(t, crlValidity, crl.NextUpdate.Sub(crl.ThisUpdate))
	orgCRL, err := a.CRL(CAOrganisations)
	require.NoError(t, err)
	parsed, err := x509.ParseRevocationList(orgCRL)
	require.NoError(t, err)
	assert.Empty(t, parsed.RevokedCertificateEntries)

	st, err = a.CheckRevocation(context.Background(), person.Certificate, pers)
	require.NoError(t, err)
	assert.Equal(t, RevocationRevoked, st.State)
	assert.Equal(t, ReasonAffiliationChanged, st.Reason)
	st, err = a.CheckRevocation(context.Background(), other.Certificate, orgs)
	require.NoError(t, err)
	assert.Equal(t, RevocationGood, st.State)

	_, err = a.Identity(personAddr)
	assert.ErrorIs(t, err, ErrNotFound, "a revoked certificate is no identity to sign with")
	ids, err := a.Identities(personAddr)
	require.NoError(t, err)
	require.Len(t, ids, 1, "but its key still decrypts")
	assert.Equal(t, StatusRevoked, ids[0].Status)
}

// TestRevocationOverHTTP checks another authority's certificates through
// the CRL its HTTP handler serves on 127.0.0.1.
func TestRevocationOverHTTP(t *testing.T) {
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer srv.Close()
	optsB := testOptions(filepath.Join(t.TempDir(), "pki"))
	optsB.BaseURL = srv.URL
	b, err := Init(optsB, "Autre Opérateur")
	require.NoError(t, err)
	handler = b.Handler()

	clk := &clock{t: time.Now()}
	optsA := testOptions(filepath.Join(t.TempDir(), "pki"))
	optsA.Now = clk.Now
	a, err := Init(optsA, "Relais A")
	require.NoError(t, err)

	good, err := b.Issue(Request{Kind: KindPerson, Emails: []string{"ines.petit@autre.test"}, RPPS: "10000000002"})
	require.NoError(t, err)
	bad, err := b.Issue(Request{Kind: KindPerson, Emails: []string{"lucas.bernard@autre.test"}, RPPS: "10000000003"})
	require.NoError(t, err)
	_, err = b.Revoke(bad.Serial, ReasonKeyCompromise)
	require.NoError(t, err)
	issuer := mustCA(t, b, CAPersonnes)

	ctx := context.Background()
	st, err := a.CheckRevocation(ctx, good.Certificate, issuer)
	require.NoError(t, err)
	assert.Equal(t, RevocationGood, st.State, st.Detail)
	assert.Equal(t, srv.URL+"/pki/crl/personnes.crl", st.Source)
	st, err = a.CheckRevocation(ctx, bad.Certificate, issuer)
	require.NoError(t, err)
	assert.Equal(t, RevocationRevoked, st.State)
	assert.Equal(t, ReasonKeyCompromise, st.Reason)
	assert.Contains(t, st.Summary(), "keyCompromise on ")

	// The CRL is kept until its nextUpdate: a new revocation shows after it.
	_, err = b.Revoke(good.Serial, ReasonSuperseded)
	require.NoError(t, err)
	st, _ = a.CheckRevocation(ctx, good.Certificate, issuer)
	assert.Equal(t, RevocationGood, st.State, "cached CRL")
	clk.Add(crlValidity + time.Minute)
	b.opts.Now = clk.Now // b refreshes its stale CRL when served
	st, _ = a.CheckRevocation(ctx, good.Certificate, issuer)
	assert.Equal(t, RevocationRevoked, st.State, st.Detail)
	assert.Equal(t, ReasonSuperseded, st.Reason)

	// A CRL signed by someone else than the issuer is refused.
	st, err = a.CheckRevocation(ctx, good.Certificate, mustCA(t, b, CAOrganisations))
	require.NoError(t, err)
	assert.Equal(t, RevocationUnknown, st.State)

	// Unreachable: unknown, with the reason.
	srv.Close()
	c, err := b.Issue(Request{Kind: KindOrganisation, Emails: []string{"accueil@autre.test"}})
	require.NoError(t, err)
	st, err = a.CheckRevocation(ctx, c.Certificate, mustCA(t, b, CAOrganisations))
	require.NoError(t, err)
	assert.Equal(t, RevocationUnknown, st.State)
	assert.Contains(t, st.Detail, "unreachable")
}

func TestPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	opts := testOptions(dir)
	opts.Passphrase = []byte("correct horse battery staple")
	a, err := Init(opts, "Relais")
	require.NoError(t, err)
	issued := issuePerson(t, a)
	_, err = os.Stat(filepath.Join(dir, secretFile))
	assert.ErrorIs(t, err, os.ErrNotExist, "no secret file when a passphrase is given")

	opts.Passphrase = []byte("wrong")
	_, err = Open(opts)
	assert.ErrorIs(t, err, ErrWrongPassphrase)
	opts.Passphrase = nil
	_, err = Open(opts)
	assert.ErrorContains(t, err, PassphraseEnv)

	opts.Passphrase = []byte("correct horse battery staple")
	again, err := Open(opts)
	require.NoError(t, err)
	id, err := again.Identity(personAddr)
	require.NoError(t, err)
	assert.Equal(t, issued.Serial, id.Serial)
	assert.True(t, publicKeysEqual(id.Certificate.PublicKey, id.Key.Public()))
	assert.NotNil(t, id.Decrypter())
}

func TestSecretFileWhenNoPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var logs bytes.Buffer
	opts := testOptions(dir)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	_, err := Init(opts, "Relais")
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, secretFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	assert.Contains(t, logs.String(), "only as safe as that file")

	_, err = Open(opts)
	require.NoError(t, err)
	opts.Passphrase = []byte("a passphrase")
	_, err = Open(opts)
	assert.ErrorIs(t, err, ErrWrongPassphrase)
}

func TestKeysNotPlaintextOnDisk(t *testing.T) {
	a := newTestAuthority(t)
	issuePerson(t, a)
	_, err := a.ServerCertificate("localhost")
	require.NoError(t, err)
	keys := 0
	err = filepath.WalkDir(a.opts.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		assert.NotContains(t, string(raw), "PRIVATE KEY", p)
		if strings.HasSuffix(p, ".key") {
			keys++
			info, _ := d.Info()
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), p)
			assert.Contains(t, string(raw), keyPEMType)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 5, keys, "three CAs, a person, a server")
}

// TestConcurrentIssue has two goroutines of two Authority values (as two
// processes would) issue at once on one directory.
func TestConcurrentIssue(t *testing.T) {
	a := newTestAuthority(t)
	b, err := Open(a.opts)
	require.NoError(t, err)
	const each = 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i, auth := range []*Authority{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				_, err := auth.Issue(Request{Kind: KindOrganisation, Emails: []string{fmt.Sprintf("box%d.%d@demo.mssante.test", i, j)}})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	fresh, err := Open(a.opts)
	require.NoError(t, err)
	list, err := fresh.List()
	require.NoError(t, err)
	assert.Len(t, list, 3+2*each)
	seen := map[string]bool{}
	for _, c := range list {
		assert.False(t, seen[c.Serial])
		seen[c.Serial] = true
	}
	for i := range 2 {
		for j := range each {
			_, err := fresh.Identity(fmt.Sprintf("box%d.%d@demo.mssante.test", i, j))
			assert.NoError(t, err)
		}
	}
}

// TestReloadAfterExternalChange: what another process writes is seen at
// the next lookup, without reopening.
func TestReloadAfterExternalChange(t *testing.T) {
	server := newTestAuthority(t)
	_, err := server.Identity(personAddr)
	require.ErrorIs(t, err, ErrNotFound)

	cli, err := Open(server.opts)
	require.NoError(t, err)
	issued := issuePerson(t, cli)
	id, err := server.Identity(personAddr)
	require.NoError(t, err)
	assert.Equal(t, issued.Serial, id.Serial)

	_, err = cli.Revoke(issued.Serial, ReasonKeyCompromise)
	require.NoError(t, err)
	st, err := server.CheckRevocation(context.Background(), issued.Certificate, mustCA(t, server, CAPersonnes))
	require.NoError(t, err)
	assert.Equal(t, RevocationRevoked, st.State)
	_, err = server.Identity(personAddr)
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestRenew(t *testing.T) {
	clk := &clock{t: time.Now()}
	opts := testOptions(filepath.Join(t.TempDir(), "pki"))
	opts.Now = clk.Now
	a, err := Init(opts, "Relais")
	require.NoError(t, err)
	old := issuePerson(t, a)
	clk.Add(24 * time.Hour)
	renewed, err := a.Renew(old.Serial)
	require.NoError(t, err)
	assert.NotEqual(t, old.Serial, renewed.Serial)
	assert.Equal(t, old.Serial, renewed.Renews)
	assert.Equal(t, old.Certificate.RawSubject, renewed.Certificate.RawSubject)
	assert.Equal(t, old.Certificate.EmailAddresses, renewed.Certificate.EmailAddresses)
	assert.Equal(t, old.Certificate.ExtKeyUsage, renewed.Certificate.ExtKeyUsage)
	assert.False(t, publicKeysEqual(old.Certificate.PublicKey, renewed.Certificate.PublicKey), "a new key")
	assert.True(t, renewed.Certificate.NotAfter.After(old.Certificate.NotAfter))

	still, err := a.Get(old.Serial)
	require.NoError(t, err)
	assert.Equal(t, StatusValid, still.Status, "the old one stays valid")
	id, err := a.Identity(personAddr)
	require.NoError(t, err)
	assert.Equal(t, renewed.Serial, id.Serial, "the newest signs")
	ids, err := a.Identities(personAddr)
	require.NoError(t, err)
	require.Len(t, ids, 2)

	// Once the old one has expired, it still decrypts.
	clk.Add(old.Certificate.NotAfter.Sub(clk.Now()) + time.Hour)
	ids, err = a.Identities(personAddr)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	assert.Equal(t, StatusValid, ids[0].Status)
	assert.Equal(t, StatusExpired, ids[1].Status)
	assert.Equal(t, old.Serial, ids[1].Serial)
}

func TestIdentityPrefersPerson(t *testing.T) {
	a := newTestAuthority(t)
	shared := "cabinet@demo.mssante.test"
	org, err := a.Issue(Request{Kind: KindOrganisation, Emails: []string{shared}})
	require.NoError(t, err)
	person, err := a.Issue(Request{Kind: KindPerson, Emails: []string{shared}, GivenName: "Lucas", Surname: "BERNARD"})
	require.NoError(t, err)
	id, err := a.Identity("Cabinet@demo.mssante.test")
	require.NoError(t, err)
	assert.Equal(t, person.Serial, id.Serial)
	assert.Equal(t, []*x509.Certificate{mustCA(t, a, CAPersonnes)}, id.Chain)
	_, err = a.Revoke(person.Serial, ReasonCessationOfOperation)
	require.NoError(t, err)
	id, err = a.Identity(shared)
	require.NoError(t, err)
	assert.Equal(t, org.Serial, id.Serial)
}

// TestDomainIdentity: an organisation certificate bound to a mail domain
// (the Direct Project's organisation-bound certificate) is found by the
// domain, never by an address.
func TestDomainIdentity(t *testing.T) {
	a := newTestAuthority(t)
	_, err := a.DomainIdentity("demo.mssante.test")
	require.ErrorIs(t, err, ErrNotFound)
	org, err := a.Issue(Request{Kind: KindOrganisation, DNSNames: []string{"Demo.MSSante.test."}})
	require.NoError(t, err)
	assert.Equal(t, []string{"demo.mssante.test"}, org.Certificate.DNSNames)
	assert.Empty(t, org.Certificate.EmailAddresses)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, org.Certificate.ExtKeyUsage)
	id, err := a.DomainIdentity("demo.mssante.test")
	require.NoError(t, err)
	assert.Equal(t, org.Serial, id.Serial)
	_, err = a.Identity("dr@demo.mssante.test")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = a.Issue(Request{Kind: KindOrganisation, Emails: []string{"a@demo.mssante.test"}, DNSNames: []string{"demo.mssante.test"}})
	require.Error(t, err)
	_, err = a.Issue(Request{Kind: KindOrganisation, DNSNames: []string{"x@y.test"}})
	require.Error(t, err)
}

func TestServerCertificate(t *testing.T) {
	clk := &clock{t: time.Now()}
	opts := testOptions(filepath.Join(t.TempDir(), "pki"))
	opts.Now = clk.Now
	a, err := Init(opts, "Relais")
	require.NoError(t, err)
	first, err := a.ServerCertificate("mail.demo.mssante.test", "localhost", "127.0.0.1")
	require.NoError(t, err)
	require.Len(t, first.Certificate, 2)
	assert.Equal(t, mustCA(t, a, CAOrganisations).Raw, first.Certificate[1])
	_, err = first.Leaf.Verify(x509.VerifyOptions{Roots: a.Anchors(), Intermediates: a.Intermediates(), DNSName: "localhost"})
	require.NoError(t, err)

	again, err := a.ServerCertificate("mail.demo.mssante.test", "localhost", "127.0.0.1")
	require.NoError(t, err)
	assert.Equal(t, first.Leaf.SerialNumber, again.Leaf.SerialNumber, "reused")

	clk.Add(first.Leaf.NotAfter.Sub(clk.Now()) - 20*24*time.Hour)
	renewed, err := a.ServerCertificate("mail.demo.mssante.test", "localhost", "127.0.0.1")
	require.NoError(t, err)
	assert.NotEqual(t, first.Leaf.SerialNumber, renewed.Leaf.SerialNumber, "renewed 30 days before expiry")
}

// TestImportAndAnchors imports another authority's certificate and key,
// and its root as a trust anchor.
func TestImportAndAnchors(t *testing.T) {
	a := newTestAuthority(t)
	other := newTestAuthority(t)
	ext, err := other.Issue(Request{Kind: KindOrganisation, Emails: []string{"accueil@ext.test"}})
	require.NoError(t, err)
	keyPEM, err := other.ExportKey(ext.Serial)
	require.NoError(t, err)
	chainPEM := append(ext.PEM(), certPEM(mustCA(t, other, CAOrganisations))...)

	_, err = a.Import(chainPEM, mustExportKey(t, a, issuePerson(t, a).Serial), "")
	assert.ErrorContains(t, err, "does not match")
	imported, err := a.Import(chainPEM, keyPEM, "")
	require.NoError(t, err)
	assert.Equal(t, KindOrganisation, imported.Kind)
	assert.True(t, imported.Imported)
	_, err = a.Import(chainPEM, keyPEM, "")
	assert.ErrorContains(t, err, "here already")

	id, err := a.Identity("accueil@ext.test")
	require.NoError(t, err)
	assert.Equal(t, ext.Serial, id.Serial)
	require.Len(t, id.Chain, 1)

	_, err = ext.Certificate.Verify(x509.VerifyOptions{Roots: a.Anchors(), Intermediates: a.Intermediates(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	require.Error(t, err, "not trusted before its root is added")
	n, err := a.AddAnchors(other.RootPEM())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = a.AddAnchors(other.RootPEM())
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	_, err = ext.Certificate.Verify(x509.VerifyOptions{Roots: a.Anchors(), Intermediates: a.Intermediates(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	require.NoError(t, err)
	_, err = a.AddAnchors(ext.PEM())
	assert.ErrorContains(t, err, "not a CA")
	_, err = a.Revoke(ext.Serial, ReasonKeyCompromise)
	assert.ErrorContains(t, err, "not issued here")
}

func mustExportKey(t *testing.T, a *Authority, serial string) []byte {
	t.Helper()
	k, err := a.ExportKey(serial)
	require.NoError(t, err)
	return k
}

func TestHandler(t *testing.T) {
	a := newTestAuthority(t)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	get := func(path string) (*http.Response, []byte) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}
	resp, body := get("/pki/crl/organisations.crl")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/pkix-crl", resp.Header.Get("Content-Type"))
	crl, err := x509.ParseRevocationList(body)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(mustCA(t, a, CAOrganisations)))

	resp, body = get("/pki/ca/racine.pem")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, a.RootPEM(), body)
	resp, body = get("/pki/ca/personnes.crt")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, mustCA(t, a, CAPersonnes).Raw, body)
	for _, p := range []string{"/pki/crl/other.crl", "/pki/crl/racine.pem", "/pki/ca/../index.json", "/pki/ca/racine.key"} {
		resp, _ = get(p)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}
}

func TestInitAdoptsLegacyCA(t *testing.T) {
	data := t.TempDir()
	legacy, _, err := LoadOrCreateCA(data, "Relais CA localhost")
	require.NoError(t, err)
	before, err := os.ReadFile(filepath.Join(data, CACertFile))
	require.NoError(t, err)
	opts := testOptions(filepath.Join(data, "pki"))
	opts.LegacyDir, opts.PublishRoot = data, filepath.Join(data, CACertFile)
	a, err := Init(opts, "Relais")
	require.NoError(t, err)
	assert.Equal(t, legacy.Cert.Raw, a.Root().Raw)
	after, err := os.ReadFile(filepath.Join(data, CACertFile))
	require.NoError(t, err)
	assert.Equal(t, before, after, "mail clients keep trusting the same root")
	c := issuePerson(t, a)
	_, err = c.Certificate.Verify(x509.VerifyOptions{Roots: legacy.Pool(), Intermediates: a.Intermediates(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)

	_, err = Init(opts, "Relais")
	assert.ErrorIs(t, err, ErrExists)
	_, created, err := OpenOrInit(opts, "Relais")
	require.NoError(t, err)
	assert.False(t, created)
}

func TestOpenNotInitialized(t *testing.T) {
	_, err := Open(testOptions(t.TempDir()))
	assert.True(t, errors.Is(err, ErrNotInitialized))
}

func TestParseReasonAndSerial(t *testing.T) {
	r, err := ParseReason("keycompromise")
	require.NoError(t, err)
	assert.Equal(t, ReasonKeyCompromise, r)
	r, err = ParseReason("4")
	require.NoError(t, err)
	assert.Equal(t, ReasonSuperseded, r)
	_, err = ParseReason("bored")
	assert.Error(t, err)
	assert.Equal(t, "1a2b", NormalizeSerial("00:1A:2B"))
	assert.Equal(t, "", NormalizeSerial("xyz"))
}

func TestServerCertificateDeduplicatesNames(t *testing.T) {
	a := newTestAuthority(t)
	c, err := a.ServerCertificate("localhost", "localhost", "127.0.0.1", "::1")
	require.NoError(t, err)
	assert.Equal(t, []string{"localhost"}, c.Leaf.DNSNames)
	assert.Len(t, c.Leaf.IPAddresses, 2)
	again, err := a.ServerCertificate("localhost", "localhost", "127.0.0.1", "::1")
	require.NoError(t, err)
	assert.Equal(t, c.Leaf.SerialNumber, again.Leaf.SerialNumber)
}

// FuzzParseCRL: a CRL fetched from elsewhere is untrusted input.
func FuzzParseCRL(f *testing.F) {
	a, err := Init(testOptions(filepath.Join(f.TempDir(), "pki")), "Fuzz")
	if err != nil {
		f.Fatal(err)
	}
	der, err := a.CRL(CARoot)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseCRL(data)
	})
}

// BenchmarkIdentity is the per-message lookup of the S/MIME pipeline.
func BenchmarkIdentity(b *testing.B) {
	a, err := Init(testOptions(filepath.Join(b.TempDir(), "pki")), "Bench")
	require.NoError(b, err)
	for i := range 200 {
		_, err := a.Issue(Request{Kind: KindOrganisation, Emails: []string{fmt.Sprintf("box%d@demo.mssante.test", i)}})
		require.NoError(b, err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := a.Identity(fmt.Sprintf("box%d@demo.mssante.test", i%200)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRevocationOverHTTPS: the CRL distribution point is this server's
// HTTPS listener (https://host:8443/pki/crl/...), whose certificate comes
// from the other authority: trusting its root as an anchor is enough.
func TestRevocationOverHTTPS(t *testing.T) {
	dirB := filepath.Join(t.TempDir(), "pki")
	b, err := Init(testOptions(dirB), "Operateur B")
	require.NoError(t, err)
	tlsCert, err := b.ServerCertificate("127.0.0.1")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(b.Handler())
	srv.TLS = ServerTLSConfig(tlsCert)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	optsB := testOptions(dirB)
	optsB.BaseURL = srv.URL
	b, err = Open(optsB)
	require.NoError(t, err)
	bad, err := b.Issue(Request{Kind: KindOrganisation, Emails: []string{"accueil@b.test"}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(bad.Certificate.CRLDistributionPoints[0], "https://127.0.0.1:"))
	_, err = b.Revoke(bad.Serial, ReasonPrivilegeWithdrawn)
	require.NoError(t, err)

	a := newTestAuthority(t)
	issuer := mustCA(t, b, CAOrganisations)
	st, err := a.CheckRevocation(context.Background(), bad.Certificate, issuer)
	require.NoError(t, err)
	assert.Equal(t, RevocationUnknown, st.State, "B's TLS certificate is not trusted yet")
	assert.Contains(t, st.Detail, "certificate")

	a2, err := Open(a.opts) // a fresh cache
	require.NoError(t, err)
	_, err = a2.AddAnchors(b.RootPEM())
	require.NoError(t, err)
	st, err = a2.CheckRevocation(context.Background(), bad.Certificate, issuer)
	require.NoError(t, err)
	assert.Equal(t, RevocationRevoked, st.State, st.Detail)
	assert.Equal(t, ReasonPrivilegeWithdrawn, st.Reason)
}
