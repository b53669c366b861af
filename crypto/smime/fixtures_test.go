package smime

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Synthetic PKI, generated once per test binary: root -> intermediate ->
// leaves with emailProtection and an rfc822Name, plus a foreign root and
// leaves that are expired or have the wrong key usage.
type fixture struct {
	dir         string // PEM files for OpenSSL
	root, inter *x509.Certificate
	roots       *x509.CertPool
	alice, bob  Identity // valid signer and recipient
	expired     Identity
	noDigSig    Identity // keyUsage without digitalSignature
	serverEKU   Identity // EKU serverAuth only
	untrusted   Identity // chains to a root we do not trust
	now         time.Time
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

const (
	aliceAddr = "alice.martin@hopital-a.example"
	bobAddr   = "bruno.petit@cabinet-b.example"
)

func getFixture(tb testing.TB) *fixture {
	tb.Helper()
	fixOnce.Do(func() { fix, fixErr = newFixture() })
	if fixErr != nil {
		tb.Fatalf("fixture: %v", fixErr)
	}
	return fix
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	// A recovered panic is a bug even when the caller survived it.
	if n := RecoveredPanics(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "smime: %d panics recovered during the tests\n", n)
		code = 1
	}
	os.Exit(code)
}

func newFixture() (*fixture, error) {
	f := &fixture{now: time.Now()}
	dir, err := os.MkdirTemp("", "relais-smime-test-")
	if err != nil {
		return nil, err
	}
	f.dir = dir
	keys := make([]*rsa.PrivateKey, 5)
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	rootKey, interKey, aliceKey, bobKey, otherKey := keys[0], keys[1], keys[2], keys[3], keys[4]
	serial := int64(100)
	issue := func(tmpl, parent *x509.Certificate, pub *rsa.PublicKey, signer *rsa.PrivateKey) (*x509.Certificate, error) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"Relais Test"}},
			NotBefore:             f.now.Add(-48 * time.Hour),
			NotAfter:              f.now.Add(10 * 365 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
	}
	leaf := func(cn, addr string, pub *rsa.PublicKey) *x509.Certificate {
		ski := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
		return &x509.Certificate{
			Subject:        pkix.Name{CommonName: cn, Organization: []string{"Relais Test"}},
			NotBefore:      f.now.Add(-24 * time.Hour),
			NotAfter:       f.now.Add(365 * 24 * time.Hour),
			KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			EmailAddresses: []string{addr},
			SubjectKeyId:   ski[:],
		}
	}
	if f.root, err = issue(ca("Relais Test Root CA"), nil, &rootKey.PublicKey, rootKey); err != nil {
		return nil, err
	}
	if f.inter, err = issue(ca("Relais Test Mail CA"), f.root, &interKey.PublicKey, rootKey); err != nil {
		return nil, err
	}
	f.roots = x509.NewCertPool()
	f.roots.AddCert(f.root)
	mk := func(tmpl *x509.Certificate, key *rsa.PrivateKey) (Identity, error) {
		c, err := issue(tmpl, f.inter, &key.PublicKey, interKey)
		return Identity{Cert: c, Chain: []*x509.Certificate{f.inter}, Key: key}, err
	}
	if f.alice, err = mk(leaf("Dr Alice Martin", aliceAddr, &aliceKey.PublicKey), aliceKey); err != nil {
		return nil, err
	}
	if f.bob, err = mk(leaf("Dr Bruno Petit", bobAddr, &bobKey.PublicKey), bobKey); err != nil {
		return nil, err
	}
	t := leaf("Dr Alice Martin (old)", aliceAddr, &aliceKey.PublicKey)
	t.NotBefore, t.NotAfter = f.now.Add(-400*24*time.Hour), f.now.Add(-30*24*time.Hour)
	if f.expired, err = mk(t, aliceKey); err != nil {
		return nil, err
	}
	t = leaf("Dr Alice Martin (encryption only)", aliceAddr, &aliceKey.PublicKey)
	t.KeyUsage = x509.KeyUsageKeyEncipherment
	if f.noDigSig, err = mk(t, aliceKey); err != nil {
		return nil, err
	}
	t = leaf("Dr Alice Martin (server)", aliceAddr, &aliceKey.PublicKey)
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if f.serverEKU, err = mk(t, aliceKey); err != nil {
		return nil, err
	}
	otherRoot, err := issue(ca("Unknown Root CA"), nil, &otherKey.PublicKey, otherKey)
	if err != nil {
		return nil, err
	}
	uc, err := issue(leaf("Dr Alice Martin (self-made)", aliceAddr, &aliceKey.PublicKey), otherRoot, &aliceKey.PublicKey, otherKey)
	if err != nil {
		return nil, err
	}
	f.untrusted = Identity{Cert: uc, Key: aliceKey}

	write := func(name string, typ string, der []byte) error {
		return os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	for name, der := range map[string][]byte{
		"root.pem": f.root.Raw, "inter.pem": f.inter.Raw,
		"alice.pem": f.alice.Cert.Raw, "bob.pem": f.bob.Cert.Raw,
	} {
		if err := write(name, "CERTIFICATE", der); err != nil {
			return nil, err
		}
	}
	for name, k := range map[string]*rsa.PrivateKey{"alice.key": aliceKey, "bob.key": bobKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := write(name, "PRIVATE KEY", der); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixture) opts() VerifyOptions {
	return VerifyOptions{Roots: f.roots, AuthServID: "mx.relais.example"}
}

// testMessage is a synthetic message (no real person).
func testMessage() []byte {
	return []byte("From: Dr Alice Martin <" + aliceAddr + ">\r\n" +
		"To: Dr Bruno Petit <" + bobAddr + ">\r\n" +
		"Subject: Compte rendu de sortie (patient fictif)\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n" +
		"Message-ID: <test-1@hopital-a.example>\r\n" +
		"Disposition-Notification-To: " + aliceAddr + "\r\n" +
		"X-Priority: 3\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Bonjour confrère,\r\n\r\nVoici le compte rendu fictif.\r\n-- \r\nAlice\r\n")
}
