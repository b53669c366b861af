package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// The Authority is a certificate hierarchy modelled on the French
// IGC-Santé: a root ("AC RACINE ...") and two intermediates, one for
// organisations and servers ("AC ... ORGANISATIONS") and one for people
// ("AC ... PERSONNES"). It is kept in a directory:
//
//	index.json      every certificate (DER), its kind, status, revocation
//	kdf.json        key derivation parameters (see keystore.go)
//	secret          the random key-store secret when no passphrase is used
//	keys/SERIAL.key encrypted private keys
//	crl/NAME.crl    the current CRL of each CA
//	lock            flock(2) taken by writers
//
// Several processes may use the directory at once (relais serve and the
// relais pki commands): writers hold the lock, and readers notice a new
// index.json (a rename gives it a new inode) at their next lookup.

// Names of the CAs of the hierarchy, as used in URLs and file names.
const (
	CARoot          = "racine"
	CAOrganisations = "organisations"
	CAPersonnes     = "personnes"
)

// Kind is what a certificate is for.
type Kind string

// The kinds of certificate.
const (
	KindCA           Kind = "ca"
	KindServer       Kind = "server"       // TLS server and client (operators' mutual TLS)
	KindOrganisation Kind = "organisation" // S/MIME for an organisation's mailbox or a domain
	KindPerson       Kind = "person"       // S/MIME for a practitioner (RPPS in the subject)
)

// ParseKind accepts server, person, organisation (and organization).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "server":
		return KindServer, nil
	case "person":
		return KindPerson, nil
	case "organisation", "organization":
		return KindOrganisation, nil
	}
	return "", fmt.Errorf("pki: unknown kind %q (server, person or organisation)", s)
}

// Status is a certificate's state at a given time.
type Status string

// The statuses of a certificate.
const (
	StatusValid   Status = "valid"
	StatusExpired Status = "expired" // or not yet valid
	StatusRevoked Status = "revoked"
)

// Errors of the Authority.
var (
	ErrNotInitialized = errors.New("pki: no certificate authority here (run \"relais pki init\")")
	ErrExists         = errors.New("pki: a certificate authority exists here already")
	ErrNotFound       = errors.New("pki: no such certificate")
)

// Options configure an Authority.
type Options struct {
	// Dir holds the authority (data/pki).
	Dir string
	// Passphrase protects the private keys. When empty, a random secret
	// file in Dir does, and a warning says so.
	Passphrase []byte
	// BaseURL is where this server's HTTP listener is reached
	// ("https://mail.example.fr:8443"): certificates carry
	// BaseURL+"/pki/crl/NAME.crl" as their CRL distribution point. Empty:
	// the one recorded at Init.
	BaseURL string
	// PublishRoot, if set, is a file the root certificate is also written
	// to in PEM (data/ca.pem, what users import in their mail client).
	PublishRoot string
	// LegacyDir, if set, is where an older Relais kept its CA (ca.pem and
	// ca-key.pem): Init adopts that CA as the root, so that clients which
	// trust it keep working.
	LegacyDir string
	// Logger receives warnings (slog.Default when nil).
	Logger *slog.Logger
	// HTTPClient fetches other authorities' CRLs. When nil: a client with
	// a 10 s timeout that trusts the system roots and Anchors() (HTTPS
	// distribution points of other Relais).
	HTTPClient *http.Client
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Authority is the certificate hierarchy kept in a directory. It is safe
// for concurrent use, by goroutines and by processes.
type Authority struct {
	opts Options
	log  *slog.Logger
	ks   *keyStore
	// genKey makes new private keys (tests swap it for a pool).
	genKey func() (*rsa.PrivateKey, error)

	wmu sync.Mutex // writers in this process; the flock serialises processes

	mu    sync.Mutex
	state *state
	keys  map[string]crypto.Signer // decrypted keys by serial

	crls crlCache
}

// index is index.json.
type index struct {
	Version      int       `json:"version"`
	Organisation string    `json:"organisation"`
	BaseURL      string    `json:"base_url"`
	Created      time.Time `json:"created"`
	Certs        []*record `json:"certificates"`
	Anchors      [][]byte  `json:"anchors,omitempty"`
	// CRLs holds the number and dates of each CA's current CRL.
	CRLs map[string]crlInfo `json:"crls,omitempty"`
}

type crlInfo struct {
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
}

// record is one certificate of the index.
type record struct {
	Serial   string     `json:"serial"`
	Kind     Kind       `json:"kind"`
	Name     string     `json:"name,omitempty"`   // the CA's name, for kind ca
	Issuer   string     `json:"issuer,omitempty"` // the issuing CA's name; empty when imported
	DER      []byte     `json:"der"`
	Chain    [][]byte   `json:"chain,omitempty"` // imported: the intermediates given with it
	HasKey   bool       `json:"has_key"`
	Imported bool       `json:"imported,omitempty"`
	Renews   string     `json:"renews,omitempty"`
	Created  time.Time  `json:"created"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	Reason   int        `json:"reason,omitempty"`

	cert *x509.Certificate
}

// state is a parsed index.
type state struct {
	idx      *index
	fileInfo os.FileInfo
	bySerial map[string]*record
	byEmail  map[string][]*record
	cas      map[string]*record
	anchors  []*x509.Certificate
}

func (a *Authority) now() time.Time {
	if a.opts.Now != nil {
		return a.opts.Now()
	}
	return time.Now()
}

func (a *Authority) path(parts ...string) string {
	return filepath.Join(append([]string{a.opts.Dir}, parts...)...)
}

func newAuthority(opts Options) (*Authority, error) {
	if opts.Dir == "" {
		return nil, errors.New("pki: no directory given")
	}
	a := &Authority{opts: opts, log: opts.Logger, keys: map[string]crypto.Signer{}}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.genKey = newRSAKey
	a.crls.entries = map[string]*crlEntry{}
	return a, nil
}

// Open opens the authority kept in opts.Dir.
func Open(opts Options) (*Authority, error) {
	a, err := newAuthority(opts)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(a.path(indexFile)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotInitialized
	}
	if a.ks, err = openKeyStore(opts.Dir, opts.Passphrase, a.log); err != nil {
		return nil, err
	}
	if _, err := a.current(); err != nil {
		return nil, err
	}
	if opts.PublishRoot != "" {
		if err := a.publishRoot(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// OpenOrInit opens the authority in opts.Dir, or creates it for
// organisation; created reports which.
func OpenOrInit(opts Options, organisation string) (a *Authority, created bool, err error) {
	a, err = Open(opts)
	if errors.Is(err, ErrNotInitialized) {
		a, err = Init(opts, organisation)
		if errors.Is(err, ErrExists) { // another process was quicker
			a, err = Open(opts)
			return a, false, err
		}
		return a, err == nil, err
	}
	return a, false, err
}

const indexFile = "index.json"

// newRSAKey makes the keys of new certificates (tests replace it with a
// pool of pre-generated keys: RSA generation is slow).
var newRSAKey = func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, KeyBits) }

// Init creates the hierarchy in opts.Dir for organisation (the O of the
// subjects, and the name of the PKI: "AC RACINE RELAIS <ORGANISATION>").
func Init(opts Options, organisation string) (*Authority, error) {
	organisation = strings.TrimSpace(organisation)
	if organisation == "" {
		return nil, errors.New("pki: the organisation name is empty")
	}
	if opts.BaseURL == "" {
		return nil, errors.New("pki: a base URL is needed for the CRL distribution points")
	}
	a, err := newAuthority(opts)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{opts.Dir, a.path("keys"), a.path("crl")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("pki: creating %s: %w", d, err)
		}
	}
	unlock, err := lockFile(a.path("lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(a.path(indexFile)); err == nil {
		return nil, ErrExists
	}
	if a.ks, err = openKeyStore(opts.Dir, opts.Passphrase, a.log); err != nil {
		return nil, err
	}
	now := a.now()
	idx := &index{Version: 1, Organisation: organisation, BaseURL: strings.TrimRight(opts.BaseURL, "/"), Created: now.UTC(), CRLs: map[string]crlInfo{}}
	st := &state{idx: idx}
	if err := a.createHierarchy(st, now); err != nil {
		return nil, err
	}
	for _, name := range []string{CARoot, CAOrganisations, CAPersonnes} {
		if err := a.makeCRL(st, name, now); err != nil {
			return nil, err
		}
	}
	if err := a.writeIndex(idx); err != nil {
		return nil, err
	}
	if _, err := a.reload(); err != nil {
		return nil, err
	}
	if opts.PublishRoot != "" {
		if err := a.publishRoot(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// current returns the parsed index, re-reading index.json when another
// writer replaced it.
func (a *Authority) current() (*state, error) {
	fi, err := os.Stat(a.path(indexFile))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	if st != nil && os.SameFile(st.fileInfo, fi) && st.fileInfo.ModTime().Equal(fi.ModTime()) && st.fileInfo.Size() == fi.Size() {
		return st, nil
	}
	return a.reload()
}

// reload reads and parses index.json.
func (a *Authority) reload() (*state, error) {
	f, err := os.Open(a.path(indexFile))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("pki: reading the index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("pki: parsing the index: %w", err)
	}
	st, err := parseState(&idx)
	if err != nil {
		return nil, err
	}
	st.fileInfo = fi
	a.mu.Lock()
	a.state = st
	a.mu.Unlock()
	return st, nil
}

func parseState(idx *index) (*state, error) {
	st := &state{idx: idx, bySerial: map[string]*record{}, byEmail: map[string][]*record{}, cas: map[string]*record{}}
	if idx.CRLs == nil {
		idx.CRLs = map[string]crlInfo{}
	}
	for _, r := range idx.Certs {
		c, err := x509.ParseCertificate(r.DER)
		if err != nil {
			return nil, fmt.Errorf("pki: index: certificate %s: %w", r.Serial, err)
		}
		r.cert = c
		st.add(r)
	}
	for _, der := range idx.Anchors {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("pki: index: trust anchor: %w", err)
		}
		st.anchors = append(st.anchors, c)
	}
	for _, name := range []string{CARoot, CAOrganisations, CAPersonnes} {
		if st.cas[name] == nil {
			return nil, fmt.Errorf("pki: index: the %s CA is missing", name)
		}
	}
	return st, nil
}

func (st *state) add(r *record) {
	st.bySerial[r.Serial] = r
	if r.Kind == KindCA && !r.Imported {
		st.cas[r.Name] = r
	}
	for _, e := range r.cert.EmailAddresses {
		k := strings.ToLower(e)
		st.byEmail[k] = append(st.byEmail[k], r)
	}
	if r.Kind == KindOrganisation {
		for _, d := range r.cert.DNSNames {
			k := domainKey + strings.ToLower(d)
			st.byEmail[k] = append(st.byEmail[k], r)
		}
	}
}

// domainKey prefixes a domain among the addresses of byEmail: no address
// starts with "@".
const domainKey = "@"

// update runs fn on a fresh copy of the index under the write lock, then
// saves the index. fn writes key files before returning, so that the index
// never names a missing key.
func (a *Authority) update(fn func(st *state, now time.Time) error) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	unlock, err := lockFile(a.path("lock"))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := a.reload()
	if err != nil {
		return err
	}
	// Work on a copy: a failed update leaves the current state untouched.
	raw, err := json.Marshal(st.idx)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	work, err := parseState(&idx)
	if err != nil {
		return err
	}
	if err := fn(work, a.now()); err != nil {
		return err
	}
	if err := a.writeIndex(work.idx); err != nil {
		return err
	}
	_, err = a.reload()
	return err
}

func (a *Authority) writeIndex(idx *index) error {
	sort.SliceStable(idx.Certs, func(i, j int) bool { return idx.Certs[i].Created.Before(idx.Certs[j].Created) })
	raw, err := json.MarshalIndent(idx, "", " ")
	if err != nil {
		return fmt.Errorf("pki: encoding the index: %w", err)
	}
	return writeAtomic(a.path(indexFile), raw, 0o600)
}

// storeKey seals key into keys/SERIAL.key.
func (a *Authority) storeKey(serial string, key crypto.Signer) error {
	sealed, err := a.ks.sealKey(key, serial)
	if err != nil {
		return err
	}
	if err := writeAtomic(a.path("keys", serial+".key"), sealed, 0o600); err != nil {
		return err
	}
	a.mu.Lock()
	a.keys[serial] = key
	a.mu.Unlock()
	return nil
}

// key returns the decrypted private key of a certificate.
func (a *Authority) key(serial string) (crypto.Signer, error) {
	a.mu.Lock()
	k := a.keys[serial]
	a.mu.Unlock()
	if k != nil {
		return k, nil
	}
	raw, err := os.ReadFile(a.path("keys", serial+".key"))
	if err != nil {
		return nil, fmt.Errorf("pki: reading the key of %s: %w", serial, err)
	}
	k, err = a.ks.openKey(raw, serial)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.keys[serial] = k
	a.mu.Unlock()
	return k, nil
}

// SerialString is how serial numbers are written everywhere in Relais:
// lower-case hexadecimal without leading zeros.
func SerialString(c *x509.Certificate) string {
	return c.SerialNumber.Text(16)
}

// NormalizeSerial accepts hexadecimal with or without colons, any case.
func NormalizeSerial(s string) string {
	s = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	s = strings.TrimPrefix(s, "0x")
	s = strings.TrimLeft(s, "0")
	if _, err := hex.DecodeString(strings.Repeat("0", len(s)%2) + s); err != nil {
		return ""
	}
	return s
}

// publishRoot writes the root certificate to opts.PublishRoot when its
// content differs.
func (a *Authority) publishRoot() error {
	st, err := a.current()
	if err != nil {
		return err
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.cas[CARoot].DER})
	if old, err := os.ReadFile(a.opts.PublishRoot); err == nil && string(old) == string(p) {
		return nil
	}
	return writeAtomic(a.opts.PublishRoot, p, 0o644)
}

// Organisation is the name given at Init.
func (a *Authority) Organisation() string {
	st, err := a.current()
	if err != nil {
		return ""
	}
	return st.idx.Organisation
}

// CA returns the certificate of one of the hierarchy's CAs (CARoot,
// CAOrganisations, CAPersonnes).
func (a *Authority) CA(name string) (*x509.Certificate, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	r := st.cas[name]
	if r == nil {
		return nil, fmt.Errorf("pki: no CA named %q", name)
	}
	return r.cert, nil
}

// Root returns the root certificate.
func (a *Authority) Root() *x509.Certificate {
	c, _ := a.CA(CARoot)
	return c
}

// RootPEM is the root certificate in PEM (what mail clients import).
func (a *Authority) RootPEM() []byte {
	c := a.Root()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
