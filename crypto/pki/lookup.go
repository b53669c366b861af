package pki

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Identity is an S/MIME identity: a certificate, its chain and its private
// key. Key is a crypto.Signer; for RSA keys (all this authority makes) it
// is an *rsa.PrivateKey, which is also a crypto.Decrypter.
type Identity struct {
	Serial      string
	Kind        Kind
	Status      Status
	Certificate *x509.Certificate
	// Chain is the intermediates, without the root.
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// Decrypter returns the key as a crypto.Decrypter, or nil.
func (id Identity) Decrypter() crypto.Decrypter {
	d, _ := id.Key.(crypto.Decrypter)
	return d
}

// Identity returns the newest valid S/MIME identity of address: a person's
// certificate first, else an organisation's. ErrNotFound when there is
// none.
func (a *Authority) Identity(address string) (Identity, error) {
	ids, err := a.identities(address, true)
	if err != nil {
		return Identity{}, err
	}
	if len(ids) == 0 {
		return Identity{}, fmt.Errorf("%w: no valid S/MIME certificate with a key for %s", ErrNotFound, address)
	}
	return ids[0], nil
}

// Identities returns every S/MIME identity of address that has a key,
// whatever its status (expired and revoked ones included: mail encrypted
// to an old certificate must still open), the valid ones first, then
// persons before organisations, then newest first. Check Status before
// signing with one.
func (a *Authority) Identities(address string) ([]Identity, error) {
	return a.identities(address, false)
}

// DomainIdentity returns the newest valid organisation certificate bound
// to a mail domain (a dNSName, the Direct Project's organisation-bound
// certificate): what signs for an address of the domain that has no
// certificate of its own. ErrNotFound when there is none.
func (a *Authority) DomainIdentity(domain string) (Identity, error) {
	ids, err := a.identities(domainKey+strings.TrimSuffix(domain, "."), true)
	if err != nil {
		return Identity{}, err
	}
	if len(ids) == 0 {
		return Identity{}, fmt.Errorf("%w: no valid organisation certificate with a key for the domain %s", ErrNotFound, domain)
	}
	return ids[0], nil
}

// DomainIdentities is Identities for the organisation certificates of a
// domain: every one with a key, valid ones first.
func (a *Authority) DomainIdentities(domain string) ([]Identity, error) {
	return a.identities(domainKey+strings.TrimSuffix(domain, "."), false)
}

func (a *Authority) identities(address string, validOnly bool) ([]Identity, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	now := a.now()
	var recs []*record
	for _, r := range st.byEmail[strings.ToLower(strings.TrimSpace(address))] {
		if !r.HasKey || (r.Kind != KindPerson && r.Kind != KindOrganisation) {
			continue
		}
		if validOnly && r.status(now) != StatusValid {
			continue
		}
		recs = append(recs, r)
	}
	rank := func(r *record) int {
		n := 0
		if r.status(now) != StatusValid {
			n += 2
		}
		if r.Kind != KindPerson {
			n++
		}
		return n
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if ri, rj := rank(recs[i]), rank(recs[j]); ri != rj {
			return ri < rj
		}
		return recs[i].cert.NotBefore.After(recs[j].cert.NotBefore)
	})
	out := make([]Identity, 0, len(recs))
	for _, r := range recs {
		k, err := a.key(r.Serial)
		if err != nil {
			return nil, err
		}
		out = append(out, Identity{Serial: r.Serial, Kind: r.Kind, Status: r.status(now), Certificate: r.cert, Chain: st.chain(r), Key: k})
	}
	return out, nil
}

// serverRenewBefore is how long before expiry ServerCertificate makes a new
// certificate.
const serverRenewBefore = 30 * 24 * time.Hour

// ServerCertificate returns the TLS certificate of the listeners for
// hostname (and extraNames: "localhost", IP addresses...): an imported
// server certificate covering hostname when one is valid, else the newest
// one this authority issued, issuing a new one from ORGANISATIONS when
// there is none, when it does not cover every name, or when it has less
// than 30 days left. The chain holds the leaf and its intermediate.
func (a *Authority) ServerCertificate(hostname string, extraNames ...string) (tls.Certificate, error) {
	hostname = strings.ToLower(strings.TrimSuffix(hostname, "."))
	names := append([]string{hostname}, extraNames...)
	if c, ok, err := a.findServer(hostname, names); err != nil || ok {
		return c, err
	}
	var cert tls.Certificate
	err := a.update(func(st *state, now time.Time) error {
		// Another process may have issued it meanwhile.
		if c, ok, err := a.pickServer(st, hostname, names, now); err != nil || ok {
			cert = c
			return err
		}
		r, err := a.issue(st, Request{Kind: KindServer, DNSNames: names}, nil, now)
		if err != nil {
			return err
		}
		cert, err = a.tlsCertificate(st, r)
		return err
	})
	return cert, err
}

func (a *Authority) findServer(hostname string, names []string) (tls.Certificate, bool, error) {
	st, err := a.current()
	if err != nil {
		return tls.Certificate{}, false, err
	}
	return a.pickServer(st, hostname, names, a.now())
}

func (a *Authority) pickServer(st *state, hostname string, names []string, now time.Time) (tls.Certificate, bool, error) {
	var best *record
	for _, r := range st.idx.Certs {
		if r.Kind != KindServer || !r.HasKey || r.status(now) != StatusValid || r.cert.VerifyHostname(hostname) != nil {
			continue
		}
		if r.Imported {
			if best == nil || !best.Imported || r.cert.NotBefore.After(best.cert.NotBefore) {
				best = r
			}
			continue
		}
		if r.cert.NotAfter.Sub(now) < serverRenewBefore || !coversAll(r.cert, names) {
			continue
		}
		if best == nil || (!best.Imported && r.cert.NotBefore.After(best.cert.NotBefore)) {
			best = r
		}
	}
	if best == nil {
		return tls.Certificate{}, false, nil
	}
	c, err := a.tlsCertificate(st, best)
	return c, err == nil, err
}

func coversAll(c *x509.Certificate, names []string) bool {
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func (a *Authority) tlsCertificate(st *state, r *record) (tls.Certificate, error) {
	k, err := a.key(r.Serial)
	if err != nil {
		return tls.Certificate{}, err
	}
	out := tls.Certificate{Certificate: [][]byte{r.DER}, PrivateKey: k, Leaf: r.cert}
	for _, c := range st.chain(r) {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// Anchors returns the trust anchors: this authority's root and the
// imported anchors (real IGC-Santé roots, other operators' roots).
func (a *Authority) Anchors() *x509.CertPool {
	p := x509.NewCertPool()
	st, err := a.current()
	if err != nil {
		return p
	}
	p.AddCert(st.cas[CARoot].cert)
	for _, c := range st.anchors {
		p.AddCert(c)
	}
	return p
}

// AnchorCertificates lists the imported trust anchors (without the own
// root).
func (a *Authority) AnchorCertificates() ([]*x509.Certificate, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	return slices.Clone(st.anchors), nil
}

// Intermediates returns the intermediate CAs known here: this authority's
// two, and those imported with external certificates.
func (a *Authority) Intermediates() *x509.CertPool {
	p := x509.NewCertPool()
	st, err := a.current()
	if err != nil {
		return p
	}
	p.AddCert(st.cas[CAOrganisations].cert)
	p.AddCert(st.cas[CAPersonnes].cert)
	for _, r := range st.idx.Certs {
		if r.Imported {
			for _, c := range st.chain(r) {
				if c.IsCA {
					p.AddCert(c)
				}
			}
		}
	}
	return p
}

// AddAnchors adds the CA certificates of a PEM (or DER) file to the trust
// anchors. It returns how many were new.
func (a *Authority) AddAnchors(data []byte) (int, error) {
	certs, err := ParseCertificates(data)
	if err != nil {
		return 0, err
	}
	for _, c := range certs {
		if !c.IsCA || !c.BasicConstraintsValid {
			return 0, fmt.Errorf("pki: %s is not a CA certificate", c.Subject)
		}
	}
	added := 0
	err = a.update(func(st *state, _ time.Time) error {
		for _, c := range certs {
			if bytes.Equal(c.Raw, st.cas[CARoot].DER) || slices.ContainsFunc(st.idx.Anchors, func(d []byte) bool { return bytes.Equal(d, c.Raw) }) {
				continue
			}
			st.idx.Anchors = append(st.idx.Anchors, c.Raw)
			added++
		}
		return nil
	})
	return added, err
}

// Import records an external certificate (a real IGC-Santé one, say) and
// its private key, both PEM; certPEM may carry the intermediates after the
// leaf. kind is server, person or organisation; empty guesses it from the
// extended key usages. The key is kept encrypted like the others.
func (a *Authority) Import(certPEM, keyPEM []byte, kind Kind) (Certificate, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return Certificate{}, err
	}
	leaf := certs[0]
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return Certificate{}, err
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return Certificate{}, errors.New("pki: the private key does not match the certificate")
	}
	if kind == "" {
		kind = guessKind(leaf)
	}
	switch kind {
	case KindServer:
		if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 {
			return Certificate{}, errors.New("pki: a server certificate without DNS names")
		}
	case KindPerson, KindOrganisation:
		if len(leaf.EmailAddresses) == 0 {
			return Certificate{}, errors.New("pki: an S/MIME certificate without a mail address (rfc822Name)")
		}
	default:
		return Certificate{}, fmt.Errorf("pki: cannot import a certificate of kind %q", kind)
	}
	var out Certificate
	err = a.update(func(st *state, now time.Time) error {
		s := SerialString(leaf)
		if old := st.bySerial[s]; old != nil {
			if bytes.Equal(old.DER, leaf.Raw) {
				return fmt.Errorf("pki: certificate %s is here already", s)
			}
			return fmt.Errorf("pki: another certificate with serial %s is here already", s)
		}
		r := &record{Serial: s, Kind: kind, DER: leaf.Raw, HasKey: true, Imported: true, Created: now.UTC(), cert: leaf}
		for _, c := range certs[1:] {
			r.Chain = append(r.Chain, c.Raw)
		}
		if err := a.storeKey(s, key); err != nil {
			return err
		}
		st.idx.Certs = append(st.idx.Certs, r)
		st.add(r)
		out = a.view(st, r, now)
		return nil
	})
	return out, err
}

func guessKind(c *x509.Certificate) Kind {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth {
			return KindServer
		}
	}
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidGivenName) || n.Type.Equal(oidSurname) {
			return KindPerson
		}
	}
	return KindOrganisation
}

// ParseCertificates reads every CERTIFICATE block of PEM data, or one DER
// certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parsing a certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		return out, nil
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, errors.New("pki: neither PEM certificates nor a DER certificate")
	}
	return []*x509.Certificate{c}, nil
}

// parsePrivateKey reads a PKCS #8, PKCS #1 or SEC 1 private key in PEM.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("pki: no private key in the key file (PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")
		}
		if strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("pki: the key file is encrypted: decrypt it first (openssl pkey -in key.pem -out plain.pem)")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: parsing the private key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("pki: unsupported private key type")
		}
		return s, nil
	}
}
