// Package pki is Relais's certificate authority.
//
// Authority (authority.go) is a hierarchy modelled on IGC-Santé: a root,
// an ORGANISATIONS and a PERSONNES intermediate, TLS server and S/MIME
// certificates (RFC 5280, RFC 8550), revocation and CRLs, keys encrypted
// at rest, trust anchors and a revocation checker for S/MIME verification.
// CA and LoadOrCreateCA are the single self-made CA that came first; they
// stay for the tests that use them.
//
// TLS follows the MSSanté client profile: TLS 1.2 or 1.3, and for 1.2 only
// the ECDHE-RSA AES-GCM suites 0xC030 and 0xC02F, hence RSA keys.
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// KeyBits is the RSA modulus size of every key this package makes.
const KeyBits = 2048

// CA is a certificate authority with its signing key.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	// Now is the clock used for validity periods (time.Now when nil).
	Now func() time.Time
}

func (ca *CA) now() time.Time {
	if ca.Now != nil {
		return ca.Now()
	}
	return time.Now()
}

// NewCA makes a self-signed root valid for ten years.
func NewCA(commonName string) (*CA, error) {
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("pki: generating CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Relais"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-signing CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CA: %w", err)
	}
	return &CA{Cert: cert, key: key}, nil
}

// IssueServer issues a TLS server certificate (also valid as a TLS client
// certificate, for operator-to-operator mutual TLS) for the DNS names and
// IP addresses in names, valid for one year.
func (ca *CA) IssueServer(names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("pki: a server certificate needs at least one name")
	}
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generating server key: %w", err)
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: ca.Cert.Subject.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SubjectKeyId: keyID(&key.PublicKey),
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issuing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: parsing server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// Pool returns a pool holding only this CA, for clients and tests.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CertPEM returns the CA certificate in PEM form (what users import into
// their mail client).
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Files of a CA kept in a data directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// LoadOrCreateCA loads the CA kept in dir, or makes one and saves it there:
// the certificate as dir/ca.pem, the key as dir/ca-key.pem (mode 0600).
// created reports whether a new CA was made.
func LoadOrCreateCA(dir, commonName string) (ca *CA, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err == nil {
		ca, err := loadCA(certPEM, keyPath)
		return ca, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("pki: reading %s: %w", certPath, err)
	}
	ca, err = NewCA(commonName)
	if err != nil {
		return nil, false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, false, fmt.Errorf("pki: encoding CA key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// Key first, so that a certificate on disk always has its key.
	if err := writeFileSync(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFileSync(certPath, ca.CertPEM(), 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

func loadCA(certPEM []byte, keyPath string) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("pki: CA certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(filepath.Dir(keyPath), "pki", indexFile)); serr == nil {
			return nil, fmt.Errorf("pki: %s is the root of the PKI in %s, whose keys are encrypted: open it with pki.Open", CACertFile, filepath.Join(filepath.Dir(keyPath), "pki"))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pki: reading CA key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pki: CA key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: CA key cannot sign")
	}
	if !publicKeysEqual(cert.PublicKey, signer.Public()) {
		return nil, errors.New("pki: CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, key: signer}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pki: creating %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pki: syncing %s: %w", path, err)
	}
	return f.Close()
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("pki: crypto/rand failed: %v", err))
	}
	return n.Add(n, big.NewInt(1))
}

// keyID is the RFC 5280 4.2.1.2 method (1) key identifier.
func keyID(pub *rsa.PublicKey) []byte {
	der := x509.MarshalPKCS1PublicKey(pub)
	sum := sha1.Sum(der)
	return sum[:]
}

// ServerTLSConfig is the TLS configuration of every Relais listener: TLS 1.2
// or 1.3; for 1.2 only ECDHE-RSA with AES-GCM (0xC030, 0xC02F), as the
// MSSanté client profile asks. TLS 1.3 suites are not configurable in Go and
// are all AEAD.
func ServerTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, // 0xC030
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, // 0xC02F
		},
	}
}
