package directory

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// ErrNotTrusted means a peer or a domain is outside the MSSanté trust space.
var ErrNotTrusted = errors.New("directory: not in the MSSanté trust space")

// TrustStore is what Trust reads: the imported trust list.
type TrustStore interface {
	TrustByDomain(ctx context.Context, domain string) ([]storage.TrustEntry, error)
	TrustByOperator(ctx context.Context, operatorKey string) ([]storage.TrustEntry, error)
}

// Trust is the MSSanté trust space as the imported trust list
// (listeblanchemssante.xml) describes it: which domains belong to it, and
// which operator, known by the DN of its server certificate, serves them.
// Submission checks remote recipients' domains with it; the inbound
// listener checks the client certificate of a connecting operator.
type Trust struct {
	store TrustStore
}

// NewTrust returns the trust space backed by st.
func NewTrust(st TrustStore) *Trust { return &Trust{store: st} }

// DomainTrusted reports whether domain is a domain of the trust space.
// Domains compare case-insensitively, a trailing dot ignored.
func (t *Trust) DomainTrusted(ctx context.Context, domain string) (bool, error) {
	d := normalizeDomain(domain)
	if d == "" {
		return false, nil
	}
	entries, err := t.store.TrustByDomain(ctx, d)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("trust list: domain %q: %w", d, err)
	}
	return len(entries) > 0, nil
}

// Operator is an operator of the trust space, as a connecting peer.
type Operator struct {
	DN      string   // its certificate's subject, RFC 4514
	Domains []string // the domains the trust list gives it, sorted
}

// PeerOperator identifies the operator presenting cert (the client
// certificate of a mutual-TLS session): its subject DN, compared by parsed
// attributes, must be an operator DN of the trust list. The caller has
// verified the chain already; this decides membership only.
func (t *Trust) PeerOperator(ctx context.Context, cert *x509.Certificate) (Operator, error) {
	if cert == nil {
		return Operator{}, fmt.Errorf("no client certificate: %w", ErrNotTrusted)
	}
	dn, err := SubjectDN(cert)
	if err != nil {
		return Operator{}, err
	}
	key, err := CanonicalDN(dn)
	if err != nil {
		return Operator{}, fmt.Errorf("certificate subject %q: %w", dn, err)
	}
	entries, err := t.store.TrustByOperator(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		entries, err = nil, nil
	}
	if err != nil {
		return Operator{}, fmt.Errorf("trust list: operator %q: %w", dn, err)
	}
	if len(entries) == 0 {
		return Operator{}, fmt.Errorf("operator %q: %w", dn, ErrNotTrusted)
	}
	op := Operator{DN: dn}
	for _, e := range entries {
		op.Domains = append(op.Domains, e.Domain)
	}
	return op, nil
}

// Serves reports whether the operator serves domain (a sender domain it
// may use on port 25).
func (o Operator) Serves(domain string) bool {
	d := normalizeDomain(domain)
	for _, x := range o.Domains {
		if x == d {
			return true
		}
	}
	return false
}

// SubjectDN renders the certificate's subject as an RFC 4514 string from
// its raw encoding, keeping every attribute and the order of the RDNs
// (pkix.Name drops attributes it does not know and reorders others).
func SubjectDN(cert *x509.Certificate) (string, error) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(cert.RawSubject, &rdns)
	if err != nil {
		return "", fmt.Errorf("parsing the certificate subject: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("parsing the certificate subject: trailing data")
	}
	return rdns.String(), nil
}

func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
