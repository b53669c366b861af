package dirapi

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
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/internal/authn"
	"github.com/relais-mssante/relais/internal/httpauth"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// Synthetic directory: 25 general practitioners "LEGRAND" in Lyon, each at
// the Clinique des Tilleuls and the odd ones also at a practice; an
// organisational mailbox; a trust-list domain; a certificate.
const (
	user       = "api@relais.test"
	password   = "s3cret-api"
	nPros      = 25
	clinicID   = "F690000001"
	clinicFIN  = "690000001"
	cabinetID  = "C690000002"
	orgMailbox = "secretariat@tilleuls.mssante.test"
	trustDom   = "tilleuls.mssante.test"
)

func proID(i int) string   { return fmt.Sprintf("8101000000%02d", i) }
func proMail(i int) string { return fmt.Sprintf("alix%02d.legrand@tilleuls.mssante.test", i) }

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func fill(t *testing.T, st *sqlite.Store) []byte {
	t.Helper()
	ctx := context.Background()
	_, err := st.AddDomain(ctx, "relais.test")
	require.NoError(t, err)
	h, err := authn.HashPassword(password, authn.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	require.NoError(t, err)
	_, err = st.CreateAccount(ctx, user, "API client", h)
	require.NoError(t, err)

	clinicAddr := storage.PostalAddress{Number: "12", StreetType: "Rue", Street: "des Tilleuls", PostalCode: "69003", City: "Lyon", Country: "France"}
	b := storage.DirectoryBatch{Source: storage.SourceRPPS}
	b.Organisations = []storage.Organisation{
		{ID: clinicID, FINESS: clinicFIN, LegalFINESS: "690000099", SIRET: "99999999900011", Name: "CLINIQUE DES TILLEULS", Address: clinicAddr, Phone: "0400000001", SectorCode: "SA07", Sector: "Cliniques privées"},
		{ID: cabinetID, SIRET: "99999999900029", Name: "CABINET DU PARC", Address: storage.PostalAddress{Street: "Place du Parc", PostalCode: "69006", City: "Lyon"}},
	}
	for i := 1; i <= nPros; i++ {
		id := proID(i)
		b.Professionals = append(b.Professionals, storage.Professional{
			ID: id, IDType: storage.IDTypeRPPS, Identifier: id[1:], CivilityCode: "DR", Civility: "Docteur",
			FamilyName: "LEGRAND", GivenName: fmt.Sprintf("Alix%02d", i), ProfessionCode: "10", Profession: "Médecin",
			CategoryCode: "C", Category: "Civil", SpecialtyCode: "SM54", Specialty: "Médecine générale",
		})
		b.Activities = append(b.Activities, storage.Activity{Professional: id, Key: "a1", Organisation: clinicID, ModeCode: "S", Mode: "Salarié", PostalCode: "69003", City: "Lyon"})
		if i%2 == 1 {
			b.Activities = append(b.Activities, storage.Activity{Professional: id, Key: "a2", Organisation: cabinetID, ModeCode: "L", Mode: "Libéral", PostalCode: "69006", City: "Lyon"})
		}
	}
	require.NoError(t, st.ApplyDirectory(ctx, b))
	m := storage.DirectoryBatch{Source: storage.SourceMSSante}
	for i := 1; i <= nPros; i++ {
		m.Mailboxes = append(m.Mailboxes, storage.MailboxEntry{Address: proMail(i), Type: storage.MailboxPersonal, Professional: proID(i),
			Organisation: clinicID, FamilyName: "LEGRAND", GivenName: fmt.Sprintf("Alix%02d", i), ProfessionCode: "10", Digitization: true,
			OrganisationName: "CLINIQUE DES TILLEULS", StructureAddress: clinicAddr})
	}
	m.Mailboxes = append(m.Mailboxes, storage.MailboxEntry{Address: orgMailbox, Type: storage.MailboxOrganisational, Organisation: clinicID,
		Service: "Secrétariat médical", Description: "Secrétariat des consultations", OrganisationName: "CLINIQUE DES TILLEULS", StructureAddress: clinicAddr})
	require.NoError(t, st.ApplyDirectory(ctx, m))
	require.NoError(t, st.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: []storage.TrustEntry{{
		Domain: trustDom, Description: "Clinique des Tilleuls (synthetic)", OperatorDN: "CN=mx.tilleuls.mssante.test,O=Operateur Exemple,C=FR",
		OperatorKey: "c=fr,o=operateur exemple,cn=mx.tilleuls.mssante.test", Updated: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}}}))

	// A self-signed S/MIME certificate for the first practitioner.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "Alix01 LEGRAND"}, EmailAddresses: []string{proMail(1)},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	sum := sha256.Sum256(der)
	require.NoError(t, st.PutCertificate(ctx, storage.Certificate{Address: proMail(1), DER: der, Fingerprint: hex.EncodeToString(sum[:]),
		Subject: "CN=Alix01 LEGRAND", NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Source: storage.SourceAdmin}))
	return der
}

func mount(st *sqlite.Store, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Prefix, httpauth.New(authn.New(st, nil), httpauth.Options{}).Wrap(Handler(st, log)))
	return mux
}

type client struct {
	t   *testing.T
	srv *httptest.Server
}

func (c client) get(path string, auth bool) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.srv.URL+path, nil)
	require.NoError(c.t, err)
	if auth {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.srv.Client().Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, resp.Header, body
}

func (c client) getJSON(path string, wantStatus int, v any) {
	c.t.Helper()
	status, hdr, body := c.get(path, true)
	require.Equal(c.t, wantStatus, status, "%s: %s", path, body)
	require.Equal(c.t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
	require.NoError(c.t, json.Unmarshal(body, v), "%s", body)
}

func setup(t *testing.T) (client, *sqlite.Store, []byte) {
	st := openStore(t)
	der := fill(t, st)
	srv := httptest.NewTLSServer(mount(st, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return client{t, srv}, st, der
}

type apiError struct {
	Error struct{ Code, Message, Reference string } `json:"error"`
}

func TestUnauthenticated(t *testing.T) {
	c, _, _ := setup(t)
	status, hdr, _ := c.get(Prefix+"search?q=legrand", false)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, hdr.Get("WWW-Authenticate"), `Basic realm="Relais"`)
}

func TestSearchPagesThroughEveryResult(t *testing.T) {
	c, _, _ := setup(t)
	seen := map[string]bool{}
	path := Prefix + "search?q=legrand&kind=professional&limit=10"
	pages := 0
	for {
		var res struct {
			Results []Entry
			Next    string
		}
		c.getJSON(path, 200, &res)
		pages++
		for _, e := range res.Results {
			require.Equal(t, "professional", e.Kind)
			require.NotNil(t, e.Professional)
			assert.Equal(t, "LEGRAND", e.Professional.FamilyName)
			assert.False(t, seen[e.Professional.ID], "duplicate %s", e.Professional.ID)
			seen[e.Professional.ID] = true
		}
		if res.Next == "" {
			assert.Len(t, res.Results, nPros%10)
			break
		}
		assert.Len(t, res.Results, 10)
		path = Prefix + "search?q=legrand&kind=professional&limit=10&cursor=" + url.QueryEscape(res.Next)
	}
	assert.Equal(t, 3, pages)
	assert.Len(t, seen, nPros)
}

func TestSearchFields(t *testing.T) {
	c, _, _ := setup(t)
	var res struct{ Results []Entry }
	c.getJSON(Prefix+"search?q=alix07", 200, &res)
	require.Len(t, res.Results, 1)
	e := res.Results[0]
	assert.Equal(t, proID(7), e.Professional.ID)
	assert.Equal(t, &Coded{Code: "10", Label: "Médecin"}, e.Professional.Profession)
	assert.Len(t, e.Activities, 2)
	assert.Len(t, e.Sites, 2)
	require.Len(t, e.Addresses, 1)
	assert.Equal(t, proMail(7), e.Addresses[0].Address)

	// The identifier alone, then explicit fields overriding q.
	c.getJSON(Prefix+"search?identifier="+proID(3)[1:], 200, &res)
	require.Len(t, res.Results, 1)
	assert.Equal(t, proID(3), res.Results[0].Professional.ID)

	c.getJSON(Prefix+"search?address=secretariat%40&kind=mailbox", 200, &res)
	require.Len(t, res.Results, 1)
	assert.Equal(t, "mailbox", res.Results[0].Kind)
	assert.Equal(t, orgMailbox, res.Results[0].Mailbox.Address)
	assert.Equal(t, "ORG", res.Results[0].Mailbox.Type)

	c.getJSON(Prefix+"search?q=clinique+des&kind=organisation", 200, &res)
	require.Len(t, res.Results, 1)
	assert.Equal(t, clinicID, res.Results[0].Organisation.ID)
	assert.Equal(t, "69003", res.Results[0].Organisation.Address.PostalCode)

	c.getJSON(Prefix+"search?postcode=69006&kind=professional&limit=100", 200, &res)
	assert.Len(t, res.Results, (nPros+1)/2, "the odd ones practise in 69006")
}

func TestSearchBadParameters(t *testing.T) {
	c, _, _ := setup(t)
	for _, p := range []string{
		"search?q=legrand&limit=0", "search?q=legrand&limit=101", "search?q=legrand&limit=ten",
		"search?q=legrand&sort=name", "search?q=legrand&kind=spaceship", "search", "search?q=+",
		"search?q=legrand&cursor=zzz", "search?q=a&q=b",
	} {
		var e apiError
		c.getJSON(Prefix+p, 400, &e)
		assert.Equal(t, "bad_request", e.Error.Code, p)
		assert.NotEmpty(t, e.Error.Message, p)
	}
	// A cursor is bound to its query.
	var res struct{ Next string }
	c.getJSON(Prefix+"search?q=legrand&limit=5", 200, &res)
	require.NotEmpty(t, res.Next)
	var e apiError
	c.getJSON(Prefix+"search?q=dupont&limit=5&cursor="+res.Next, 400, &e)
	assert.Contains(t, e.Error.Message, "cursor")
}

func TestProfessionalAndOrganisation(t *testing.T) {
	c, _, _ := setup(t)
	var e Entry
	c.getJSON(Prefix+"professionals/"+proID(5), 200, &e)
	assert.Equal(t, "professional", e.Kind)
	assert.Equal(t, "Alix05", e.Professional.GivenName)
	assert.Equal(t, "RPPS", e.Professional.IDType)
	require.Len(t, e.Activities, 2)
	assert.Equal(t, &Coded{Code: "S", Label: "Salarié"}, e.Activities[0].Mode)
	assert.Len(t, e.Sites, 2)
	require.Len(t, e.Addresses, 1)
	assert.True(t, e.Addresses[0].Digitization)

	// By RPPS number too.
	c.getJSON(Prefix+"professionals/"+proID(6)[1:], 200, &e)
	assert.Equal(t, proID(6), e.Professional.ID)
	assert.Len(t, e.Activities, 1)

	var o Entry
	c.getJSON(Prefix+"organisations/"+clinicFIN, 200, &o)
	assert.Equal(t, "organisation", o.Kind)
	assert.Equal(t, clinicID, o.Organisation.ID)
	assert.Equal(t, &Coded{Code: "SA07", Label: "Cliniques privées"}, o.Organisation.Sector)

	var ae apiError
	c.getJSON(Prefix+"professionals/810999999999", 404, &ae)
	assert.Equal(t, "not_found", ae.Error.Code)
	c.getJSON(Prefix+"organisations/nope", 404, &ae)
	c.getJSON(Prefix+"nothing/here", 404, &ae)
}

func TestAddressesAndCertificates(t *testing.T) {
	c, _, der := setup(t)
	var res struct {
		Address      string
		Entries      []Mailbox
		Certificates []Certificate
	}
	c.getJSON(Prefix+"addresses/"+proMail(1), 200, &res)
	require.Len(t, res.Entries, 1)
	assert.Equal(t, proID(1), res.Entries[0].Professional)
	require.Len(t, res.Certificates, 1)
	sum := sha256.Sum256(der)
	assert.Equal(t, hex.EncodeToString(sum[:]), res.Certificates[0].Fingerprint)
	assert.Equal(t, "CN=Alix01 LEGRAND", res.Certificates[0].Subject)
	assert.Equal(t, time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC), res.Certificates[0].NotAfter)

	status, hdr, body := c.get(Prefix+"addresses/"+proMail(1)+"/certificates.pem", true)
	require.Equal(t, 200, status)
	assert.Equal(t, "application/pem-certificate-chain", hdr.Get("Content-Type"))
	blk, rest := pem.Decode(body)
	require.NotNil(t, blk)
	assert.Equal(t, "CERTIFICATE", blk.Type)
	assert.Equal(t, der, blk.Bytes)
	assert.Empty(t, strings.TrimSpace(string(rest)))

	// An address without certificate has entries but no PEM.
	c.getJSON(Prefix+"addresses/"+orgMailbox, 200, &res)
	assert.Len(t, res.Entries, 1)
	assert.Empty(t, res.Certificates)
	var e apiError
	c.getJSON(Prefix+"addresses/"+orgMailbox+"/certificates.pem", 404, &e)
	c.getJSON(Prefix+"addresses/nobody@nowhere.test", 404, &e)
	c.getJSON(Prefix+"addresses/not-an-address", 400, &e)

	// The local account is in the directory too.
	c.getJSON(Prefix+"addresses/"+user, 200, &res)
	require.NotEmpty(t, res.Entries)
	assert.True(t, res.Entries[0].Local)
}

func TestTrust(t *testing.T) {
	c, _, _ := setup(t)
	var res struct {
		Domain  string
		Entries []Trust
	}
	c.getJSON(Prefix+"trust/"+strings.ToUpper(trustDom), 200, &res)
	assert.Equal(t, trustDom, res.Domain)
	require.Len(t, res.Entries, 1)
	assert.Equal(t, "CN=mx.tilleuls.mssante.test,O=Operateur Exemple,C=FR", res.Entries[0].OperatorDN)
	var e apiError
	c.getJSON(Prefix+"trust/elsewhere.test", 404, &e)
	assert.Contains(t, e.Error.Message, "trust space")
	c.getJSON(Prefix+"trust/bad_domain!", 400, &e)
}

func TestMethodNotAllowed(t *testing.T) {
	c, _, _ := setup(t)
	req, _ := http.NewRequest("POST", c.srv.URL+Prefix+"search?q=x", strings.NewReader("{}"))
	req.SetBasicAuth(user, password)
	resp, err := c.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// A store failure is a 500 with a reference that the log has too, and
// nothing of the cause in the reply.
func TestStoreErrorIs500WithReference(t *testing.T) {
	st := openStore(t)
	fill(t, st)
	var logBuf strings.Builder
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	h := Handler(st, log)
	require.NoError(t, st.Close())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", Prefix+"search?q=legrand", nil))
	assert.Equal(t, 500, rec.Code)
	var e apiError
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
	assert.Equal(t, "internal", e.Error.Code)
	assert.Equal(t, "internal error", e.Error.Message)
	require.NotEmpty(t, e.Error.Reference)
	assert.Contains(t, logBuf.String(), "correlation_id="+e.Error.Reference)
}

// TestCurl queries the API with curl over a real TLS listener whose
// certificate comes from the Relais PKI.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	st := openStore(t)
	fill(t, st)
	ca, err := pki.NewCA("Relais Test CA")
	require.NoError(t, err)
	cert, err := ca.IssueServer("127.0.0.1")
	require.NoError(t, err)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM(), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mount(st, slog.New(slog.DiscardHandler)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(tls.NewListener(ln, pki.ServerTLSConfig(cert)))
	t.Cleanup(func() { srv.Close() })
	base := "https://" + ln.Addr().String()

	out, err := exec.Command(curl, "-sS", "--fail-with-body", "--cacert", caFile, "-u", user+":"+password,
		base+Prefix+"search?q=alix0&kind=professional&limit=3").CombinedOutput()
	require.NoError(t, err, "%s", out)
	var res struct {
		Results []Entry
		Next    string
	}
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	assert.Len(t, res.Results, 3)
	assert.NotEmpty(t, res.Next)

	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile,
		base+Prefix+"search?q=alix").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "401", string(out))
}
