package docapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/document"
	"github.com/relais-mssante/relais/smtp/docapi"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// sent is one call of the recording Sender.
type sent struct {
	from  storage.Account
	rcpts []string
	msg   []byte
}

// recorder is a Sender test double: it records what it is given and
// answers err (the real pipeline is exercised end to end in cmd/relais).
type recorder struct {
	mu   sync.Mutex
	sent []sent
	err  error
}

func (r *recorder) Send(_ context.Context, from storage.Account, rcpts []string, msg []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.sent = append(r.sent, sent{from, append([]string(nil), rcpts...), msg})
	return nil
}

func (r *recorder) calls() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.sent...)
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// refusal is an error shaped like the pipeline's policy refusal (a code).
type refusal struct {
	code int
	msg  string
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Code() int     { return e.code }

// politeRefusal also has the reply text apart from the internal cause.
type politeRefusal struct{ refusal }

func (e *politeRefusal) Message() string { return "5.1.1 Unknown local user" }

// pki is a CA and a client certificate for the hospital software's
// mailbox, made once per test binary.
type pki struct {
	caPool     *x509.CertPool
	clientCert tls.Certificate
	strayCert  tls.Certificate // names an address no account has
}

var (
	pkiOnce sync.Once
	thePKI  pki
)

func testPKI(t *testing.T) pki {
	t.Helper()
	pkiOnce.Do(func() {
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Health CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		require.NoError(t, err)
		ca, err := x509.ParseCertificate(caDER)
		require.NoError(t, err)
		issue := func(serial int64, email string) tls.Certificate {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "DPI " + email},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				EmailAddresses: []string{email}}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
			require.NoError(t, err)
			return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		}
		thePKI.caPool = x509.NewCertPool()
		thePKI.caPool.AddCert(ca)
		thePKI.clientCert = issue(2, "dpi@hopital.test")
		thePKI.strayCert = issue(3, "nobody@hopital.test")
	})
	return thePKI
}

// fixture is a store with two accounts and a token each, and the API over
// HTTPS on 127.0.0.1.
type fixture struct {
	st     *sqlite.Store
	srv    *httptest.Server
	send   *recorder
	dpi    storage.Account
	other  storage.Account
	token  string // dpi's
	otherT string // other's
	now    time.Time
	builds []docapi.BuildRequest
	mu     sync.Mutex
}

// cda is the synthetic discharge letter of package document's tests
// (invented patient, test INS OID); cdaINS its patient's INS.
var cda = func() []byte {
	b, err := os.ReadFile("../../document/testdata/discharge.xml")
	if err != nil {
		panic(err)
	}
	return b
}()

const cdaINS = "285037512345688"

// pdfA is a tiny synthetic PDF whose XMP metadata declares PDF/A-1b
// (ISO 19005-1 6.7.11).
var pdfA = []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" +
	"1 0 obj << /Type /Catalog /Pages 2 0 R /Metadata 3 0 R >> endobj\n" +
	"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n" +
	"3 0 obj << /Type /Metadata /Subtype /XML >> stream\n" +
	`<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` +
	`<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"><pdfaid:part>1</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>` +
	"</rdf:RDF></x:xmpmeta>\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, err = st.AddDomain(ctx, "hopital.test")
	require.NoError(t, err)
	f := &fixture{st: st, send: &recorder{}, now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	f.dpi, err = st.CreateAccount(ctx, "dpi@hopital.test", "DPI CH Test", "x")
	require.NoError(t, err)
	f.other, err = st.CreateAccount(ctx, "other@hopital.test", "Other", "x")
	require.NoError(t, err)
	f.token = f.issueToken(t, f.dpi.ID, "rls_dpi-secret")
	f.otherT = f.issueToken(t, f.other.ID, "rls_other-secret")

	h := docapi.Handler(docapi.Config{
		Store:    st,
		Sender:   f.send,
		Build:    f.build,
		Hostname: "relais.hopital.test",
		Logger:   slog.New(slog.DiscardHandler),
		Now:      func() time.Time { return f.now },
		MaxBody:  1 << 20,
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Listener = ln
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: testPKI(t).caPool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.srv = srv
	return f
}

func (f *fixture) issueToken(t *testing.T, acct storage.AccountID, secret string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(secret))
	_, err := f.st.CreateAPIToken(context.Background(), storage.APIToken{Account: acct, Name: "test", Hash: hex.EncodeToString(sum[:])})
	require.NoError(t, err)
	return secret
}

// build is document.Build, recording its requests.
func (f *fixture) build(req docapi.BuildRequest) ([]byte, string, error) {
	f.mu.Lock()
	f.builds = append(f.builds, req)
	f.mu.Unlock()
	return document.Build(req)
}

func (f *fixture) lastBuild() docapi.BuildRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.builds[len(f.builds)-1]
}

// client returns an HTTPS client trusting the server, with cert as its
// client certificate when given.
func (f *fixture) client(cert *tls.Certificate) *http.Client {
	tr := f.srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: tr}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, Reference string }
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "%s", r.body)
	return e.Error.Code
}

func (f *fixture) do(t *testing.T, c *http.Client, method, path, token, ctype string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c == nil {
		c = f.client(nil)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func (f *fixture) post(t *testing.T, token string, req docapi.SubmitRequest) reply {
	t.Helper()
	return f.do(t, nil, "POST", docapi.Prefix, token, "application/json", jsonBody(t, req))
}

// TestSendAndStatus: the hospital software posts a document with its token,
// the pipeline gets the built mail, and the status follows each recipient.
func TestSendAndStatus(t *testing.T) {
	f := newFixture(t)
	pdf := pdfA
	r := f.post(t, f.token, docapi.SubmitRequest{
		Recipients: []string{"gp@Cabinet.Example", "nurse@cabinet.example", "gp@cabinet.example", "team@hopital.test"},
		CDA:        cda, PDF: pdf, NIL: "DPI Test 1.0", NoReply: true,
	})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	var c docapi.Created
	require.NoError(t, json.Unmarshal(r.body, &c))
	assert.Regexp(t, `^doc_[A-Za-z0-9_-]{20}$`, c.ID)
	assert.Regexp(t, `^[^<>@\s]+@relais\.hopital\.test$`, c.MessageID, "without angle brackets")
	assert.Equal(t, docapi.Prefix+"/"+c.ID, c.Status)
	assert.Equal(t, c.Status, r.header.Get("Location"))

	b := f.lastBuild()
	assert.Equal(t, docapi.BuildRequest{From: "dpi@hopital.test", FromName: "DPI CH Test",
		To: []string{"gp@cabinet.example", "nurse@cabinet.example", "team@hopital.test"}, CDA: cda, PDF: pdf,
		NIL: "DPI Test 1.0", NoReply: true, Now: f.now, Hostname: "relais.hopital.test"}, b, "domains lower-cased, duplicates dropped")
	calls := f.send.calls()
	require.Len(t, calls, 1)
	assert.Equal(t, f.dpi.ID, calls[0].from.ID)
	assert.Equal(t, "dpi@hopital.test", calls[0].from.Address)
	assert.Equal(t, b.To, calls[0].rcpts)
	assert.Contains(t, string(calls[0].msg), "Message-ID: <"+c.MessageID+">")
	// What goes out is the MSSanté mail: package document finds the
	// letter in it, valid, about the right patient.
	a := document.Analyze(calls[0].msg, document.Limits{})
	assert.True(t, a.Valid(), "%+v", a.Problems)
	assert.True(t, strings.HasPrefix(a.Subject, document.SubjectPrefix), a.Subject)
	evs := a.Events()
	require.Len(t, evs, 1)
	assert.Equal(t, cdaINS, evs[0].PatientINS)
	assert.Equal(t, "11490-0", evs[0].TypeCode)

	// Nothing known yet: every recipient is queued.
	r = f.do(t, nil, "GET", c.Status, f.token, "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var s docapi.Status
	require.NoError(t, json.Unmarshal(r.body, &s))
	assert.Equal(t, c.ID, s.ID)
	assert.Equal(t, c.MessageID, s.MessageID)
	assert.True(t, s.Created.Equal(f.now))
	require.Len(t, s.Recipients, 3)
	for _, rc := range s.Recipients {
		assert.Equal(t, "queued", rc.State)
	}

	// The relay and reports move it on.
	ctx := context.Background()
	at := f.now.Add(time.Minute)
	for _, st := range []storage.DeliveryStatus{
		{MessageID: c.MessageID, Recipient: "gp@cabinet.example", State: storage.StatusRelayed, Detail: "250 2.0.0 OK", Updated: at},
		{MessageID: c.MessageID, Recipient: "nurse@cabinet.example", State: storage.StatusFailed, Detail: "550 5.1.1 no such user", Updated: at},
		{MessageID: c.MessageID, Recipient: "team@hopital.test", State: storage.StatusDelivered, Updated: at},
		{MessageID: c.MessageID, Recipient: "team@hopital.test", State: storage.StatusRead, Detail: "manual-action/MDN-sent-manually; displayed", Updated: at.Add(time.Hour)},
	} {
		require.NoError(t, f.st.SetDeliveryStatus(ctx, f.dpi.ID, st))
	}
	r = f.do(t, nil, "GET", c.Status, f.token, "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.NoError(t, json.Unmarshal(r.body, &s))
	assert.Equal(t, []docapi.Recipient{
		{Recipient: "gp@cabinet.example", State: "relayed", Detail: "250 2.0.0 OK", Updated: at},
		{Recipient: "nurse@cabinet.example", State: "failed", Detail: "550 5.1.1 no such user", Updated: at},
		{Recipient: "team@hopital.test", State: "read", Detail: "manual-action/MDN-sent-manually; displayed", Updated: at.Add(time.Hour)},
	}, s.Recipients)

	// Another account does not see it; an unknown or malformed id is a 404.
	for _, path := range []string{c.Status, docapi.Prefix + "/doc_unknown", docapi.Prefix + "/bad%20id", docapi.Prefix + "/a/b"} {
		r = f.do(t, nil, "GET", path, f.otherT, "", nil)
		assert.Equal(t, http.StatusNotFound, r.status, path)
		assert.Equal(t, "not_found", r.errorCode(t), path)
	}
}

// TestAuthentication: a bearer token or a verified client certificate
// naming an account; anything else is a 401 with an RFC 6750 challenge.
func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	body := jsonBody(t, docapi.SubmitRequest{Recipients: []string{"gp@cabinet.example"}, CDA: cda})
	pk := testPKI(t)

	r := f.do(t, nil, "POST", docapi.Prefix, "", "application/json", body)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, `Bearer realm="Relais"`, r.header.Get("WWW-Authenticate"), "RFC 6750 3.1: no error code without credentials")
	assert.Equal(t, "unauthorized", r.errorCode(t))

	r = f.do(t, nil, "POST", docapi.Prefix, "rls_wrong", "application/json", body)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.header.Get("WWW-Authenticate"), `error="invalid_token"`)

	req, err := http.NewRequest("GET", f.srv.URL+docapi.Prefix+"/doc_x", nil)
	require.NoError(t, err)
	req.SetBasicAuth("dpi@hopital.test", "x")
	resp, err := f.client(nil).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Basic is not for this API")
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_request"`)

	// The scheme is case-insensitive.
	r = f.do(t, nil, "GET", docapi.Prefix+"/doc_x", "", "", nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	req, err = http.NewRequest("GET", f.srv.URL+docapi.Prefix+"/doc_x", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "bearer "+f.token)
	resp, err = f.client(nil).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "authenticated, unknown id")

	// A revoked token stops working.
	toks, err := f.st.APITokens(context.Background())
	require.NoError(t, err)
	require.NoError(t, f.st.RevokeAPIToken(context.Background(), toks[1].ID))
	r = f.do(t, nil, "POST", docapi.Prefix, f.otherT, "application/json", body)
	assert.Equal(t, http.StatusUnauthorized, r.status)

	// A client certificate naming dpi@hopital.test acts for that account.
	r = f.do(t, f.client(&pk.clientCert), "POST", docapi.Prefix, "", "application/json", body)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	calls := f.send.calls()
	require.Len(t, calls, 1)
	assert.Equal(t, f.dpi.ID, calls[0].from.ID)
	var c docapi.Created
	require.NoError(t, json.Unmarshal(r.body, &c))
	r = f.do(t, nil, "GET", c.Status, f.token, "", nil)
	assert.Equal(t, http.StatusOK, r.status, "the token reads what the certificate sent: same account")

	// A verified certificate for an address without an account.
	r = f.do(t, f.client(&pk.strayCert), "POST", docapi.Prefix, "", "application/json", body)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Len(t, f.send.calls(), 1)
}

// TestValidation: what the client can fix gets a 400, 413, 415 or 422 with
// a JSON error, and nothing is sent.
func TestValidation(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("a", 65) + "@cabinet.example"
	cases := []struct {
		name   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", "application/json", `{"recipients": [`, 400, "bad_request"},
		{"not base64", "application/json", `{"recipients": ["gp@cabinet.example"], "cda": "*not base64*"}`, 400, "bad_request"},
		{"unknown field", "application/json", `{"recipients": ["gp@cabinet.example"], "cda": "PD94", "patient": "x"}`, 400, "bad_request"},
		{"trailing data", "application/json", `{"recipients": ["gp@cabinet.example"], "cda": "PD94"} {}`, 400, "bad_request"},
		{"no recipient", "application/json", `{"recipients": [], "cda": "PD94"}`, 422, "invalid_request"},
		{"bad recipient", "application/json", `{"recipients": ["not an address"], "cda": "PD94"}`, 422, "invalid_request"},
		{"long local part", "application/json", `{"recipients": ["` + long + `"], "cda": "PD94"}`, 422, "invalid_request"},
		{"no cda", "application/json", `{"recipients": ["gp@cabinet.example"]}`, 422, "invalid_request"},
		{"nil with newline", "application/json", `{"recipients": ["gp@cabinet.example"], "cda": "PD94", "nil": "a\nb"}`, 422, "invalid_request"},
		{"not a CDA", "application/json", `{"recipients": ["gp@cabinet.example"], "cda": "` + base64.StdEncoding.EncodeToString([]byte("PK\x03\x04")) + `"}`, 422, "invalid_document"},
		{"text/plain", "text/plain", `hello`, 415, "unsupported_media_type"},
		{"no content type", "", `{}`, 415, "unsupported_media_type"},
		{"too large", "application/json", `{"recipients": ["gp@cabinet.example"], "cda": "` + strings.Repeat("A", 2<<20) + `"}`, 413, "too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, nil, "POST", docapi.Prefix, f.token, tc.ctype, []byte(tc.body))
			assert.Equal(t, tc.status, r.status, "%s", r.body)
			assert.Equal(t, tc.code, r.errorCode(t))
		})
	}
	tooMany := docapi.SubmitRequest{CDA: cda}
	for i := range docapi.DefaultMaxRecipients + 1 {
		tooMany.Recipients = append(tooMany.Recipients, "r"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+"@cabinet.example")
	}
	r := f.post(t, f.token, tooMany)
	assert.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Empty(t, f.send.calls(), "nothing sent")

	// Wrong methods and paths: JSON errors too.
	r = f.do(t, nil, "GET", docapi.Prefix, f.token, "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "POST", r.header.Get("Allow"))
	assert.Equal(t, "method_not_allowed", r.errorCode(t))
	r = f.do(t, nil, "DELETE", docapi.Prefix+"/doc_x", f.token, "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
}

// TestSenderErrors: a policy refusal (a 5xx code) is a 422 with its
// message; anything else a 503 with a reference and no detail.
func TestSenderErrors(t *testing.T) {
	f := newFixture(t)
	req := docapi.SubmitRequest{Recipients: []string{"someone@outside.example"}, CDA: cda}

	f.send.fail(&refusal{550, "5.7.1 Recipient someone@outside.example is outside the MSSanté trust space"})
	r := f.post(t, f.token, req)
	assert.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Equal(t, "refused", r.errorCode(t))
	assert.Contains(t, string(r.body), "outside the MSSanté trust space")

	f.send.fail(fmt.Errorf("sending: %w", &politeRefusal{refusal{550, "5.1.1 Unknown local user: account x: storage: not found"}}))
	r = f.post(t, f.token, req)
	assert.Equal(t, http.StatusUnprocessableEntity, r.status)
	var e struct {
		Error struct{ Code, Message, Reference string }
	}
	require.NoError(t, json.Unmarshal(r.body, &e))
	assert.Equal(t, "5.1.1 Unknown local user", e.Error.Message)

	f.send.fail(errors.Join(errors.New("wrapped"), &refusal{451, "4.3.0 try again"}))
	r = f.post(t, f.token, req)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "unavailable", r.errorCode(t))

	f.send.fail(errors.New("storing message: disk I/O error at /var/lib/relais"))
	r = f.post(t, f.token, req)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	require.NoError(t, json.Unmarshal(r.body, &e))
	assert.NotEmpty(t, e.Error.Reference)
	assert.NotContains(t, e.Error.Message, "disk", "internal causes stay in the log")
}

// TestMultipartCurl: the form a shell script sends with curl -F.
func TestMultipartCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	f := newFixture(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600))
	cdaFile := filepath.Join(dir, "lettre.xml")
	require.NoError(t, os.WriteFile(cdaFile, cda, 0o600))
	pdfFile := filepath.Join(dir, "lettre.pdf")
	require.NoError(t, os.WriteFile(pdfFile, pdfA, 0o600))

	out, err := exec.Command(curl, "-sS", "--cacert", caFile, "-H", "Authorization: Bearer "+f.token,
		"-F", "recipients=gp@cabinet.example", "-F", "recipients=nurse@cabinet.example, team@hopital.test",
		"-F", "cda=@"+cdaFile+";type=application/hl7-cda+xml", "-F", "pdf=@"+pdfFile+";type=application/pdf",
		"-F", "nil=curl", "-F", "noReply=true",
		"-D", "-", f.srv.URL+docapi.Prefix).CombinedOutput()
	require.NoError(t, err, "%s", out)
	head, body, ok := strings.Cut(string(out), "\r\n\r\n")
	require.True(t, ok, "%s", out)
	assert.Contains(t, head, "HTTP/1.1 201")
	var c docapi.Created
	require.NoError(t, json.Unmarshal([]byte(body), &c), "%s", out)
	assert.Contains(t, head, "Location: "+c.Status)

	b := f.lastBuild()
	assert.Equal(t, []string{"gp@cabinet.example", "nurse@cabinet.example", "team@hopital.test"}, b.To)
	assert.Equal(t, cda, b.CDA)
	assert.Equal(t, pdfA, b.PDF)
	assert.Equal(t, "curl", b.NIL)
	assert.True(t, b.NoReply)

	// A form with an unknown field, or without its CDA.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("recipients", "gp@cabinet.example"))
	require.NoError(t, mw.WriteField("patientName", "x"))
	require.NoError(t, mw.Close())
	r := f.do(t, nil, "POST", docapi.Prefix, f.token, mw.FormDataContentType(), buf.Bytes())
	assert.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("recipients", "gp@cabinet.example"))
	require.NoError(t, mw.Close())
	r = f.do(t, nil, "POST", docapi.Prefix, f.token, mw.FormDataContentType(), buf.Bytes())
	assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
}

// TestOpenAPI: the description is served without authentication, parses
// as OpenAPI 3.1 and lists every path the handler serves.
func TestOpenAPI(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, nil, "GET", docapi.OpenAPIPath, "", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	assert.Equal(t, "3.1.0", doc.OpenAPI)
	for path, method := range map[string]string{
		"/api/v1/documents":                    "post",
		"/api/v1/documents/{id}":               "get",
		"/api/v1/openapi.json":                 "get",
		"/api/v1/messages/{messageId}/status":  "get",
		"/api/v1/directory/search":             "get",
		"/api/v1/directory/professionals/{id}": "get",
		"/api/v1/directory/trust/{domain}":     "get",
	} {
		require.Contains(t, doc.Paths, path)
		assert.Contains(t, doc.Paths[path], method, path)
	}
	assert.Equal(t, docapi.OpenAPI(), r.body)

	// An independent validator, where the machine has it (a few seconds).
	if testing.Short() {
		t.Skip("-short: no independent validation")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	if exec.Command(py, "-c", "import openapi_spec_validator").Run() != nil {
		t.Skip("python3 openapi-spec-validator not installed")
	}
	file := filepath.Join(t.TempDir(), "openapi.json")
	require.NoError(t, os.WriteFile(file, r.body, 0o600))
	out, err := exec.Command(py, "-c", `import json, sys
from openapi_spec_validator import validate
validate(json.load(open(sys.argv[1])))
print("valid")`, file).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "valid")
}
