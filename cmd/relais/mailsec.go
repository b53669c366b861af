package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/crypto/smime"
	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/storage"
)

// mailSecurity joins the PKI, the directory's certificates and S/MIME: it
// signs what leaves (smtpd.Signer), encrypts it to each recipient at
// delivery time (queue.Sealer), and decrypts and verifies what arrives
// (smtpd.Opener). Private keys stay inside crypto/pki and crypto/smime.
type mailSecurity struct {
	pki      *pki.Authority
	certs    certificateStore
	hostname string
	// requireEncryption refuses to send to a recipient without a usable
	// certificate; otherwise such mail leaves signed only.
	requireEncryption bool
	log               *slog.Logger
	now               func() time.Time
}

// certificateStore is where recipients' certificates are found: the
// directory (filled from the national directory, or by an administrator).
type certificateStore interface {
	Certificates(ctx context.Context, address string) ([]storage.Certificate, error)
}

var (
	_ smtpd.Signer = (*mailSecurity)(nil)
	_ smtpd.Opener = (*mailSecurity)(nil)
	_ queue.Sealer = (*mailSecurity)(nil)
)

// Sign signs msg as sender, or else as the sender's organisation (a
// certificate for the domain, the Direct Project's organisation-bound
// certificate). Mail the client already signed or encrypted passes
// untouched.
func (m *mailSecurity) Sign(ctx context.Context, sender string, msg []byte) ([]byte, error) {
	if smime.Detect(msg) != smime.Plain {
		return msg, nil
	}
	id, err := m.signingIdentity(sender)
	if err != nil {
		return nil, err
	}
	signed, err := smime.Sign(msg, smime.Identity{Cert: id.Certificate, Chain: id.Chain, Key: id.Key})
	if err != nil {
		return nil, fmt.Errorf("signing as %s: %w", sender, err)
	}
	return signed, nil
}

func (m *mailSecurity) signingIdentity(sender string) (pki.Identity, error) {
	id, err := m.pki.Identity(sender)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pki.ErrNotFound) {
		return pki.Identity{}, fmt.Errorf("looking up the certificate of %s: %w", sender, err)
	}
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		id, err = m.pki.DomainIdentity(sender[i+1:])
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pki.ErrNotFound) {
			return pki.Identity{}, fmt.Errorf("looking up the organisation certificate of %s: %w", sender, err)
		}
	}
	return pki.Identity{}, fmt.Errorf("%s: %w", sender, smtpd.ErrNoSigningIdentity)
}

// Seal encrypts raw (our Received field and the signed message) to the
// recipient's certificate from the directory. A message that is already
// encrypted passes as is. Without a usable certificate the message leaves
// signed only, unless encryption is required: then the recipient fails for
// good with the reason.
func (m *mailSecurity) Seal(ctx context.Context, raw []byte, rcpt string) ([]byte, error) {
	if smime.Detect(raw) == smime.Encrypted {
		return raw, nil
	}
	cert, err := m.recipientCertificate(ctx, rcpt)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		if m.requireEncryption {
			return nil, fmt.Errorf("no valid encryption certificate for %s in the directory: %w", rcpt, queue.ErrPermanent)
		}
		m.log.Info("no certificate for the recipient: sent signed only", "domain", domainOf(rcpt))
		return raw, nil
	}
	out, err := smime.Encrypt(raw, []*x509.Certificate{cert})
	if err != nil {
		return nil, fmt.Errorf("encrypting to %s: %w: %w", rcpt, err, queue.ErrPermanent)
	}
	return out, nil
}

// recipientCertificate picks the newest certificate of rcpt that is valid
// now and may encrypt (keyEncipherment, emailProtection when EKUs are
// given); nil when there is none.
func (m *mailSecurity) recipientCertificate(ctx context.Context, rcpt string) (*x509.Certificate, error) {
	list, err := m.certs.Certificates(ctx, rcpt)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("looking up the certificate of %s: %w", rcpt, err)
	}
	now := m.now()
	for _, c := range list { // newest first
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil || now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			continue
		}
		if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			continue
		}
		if len(cert.ExtKeyUsage) > 0 && !hasEKU(cert, x509.ExtKeyUsageEmailProtection) {
			continue
		}
		return cert, nil
	}
	return nil, nil
}

func hasEKU(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	for _, u := range c.ExtKeyUsage {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// Open decrypts with the keys of the recipients (theirs, then their
// organisation's), verifies the signature against the trust anchors with
// revocation, and returns the message to deliver behind the result header.
func (m *mailSecurity) Open(ctx context.Context, msg []byte, rcpts []string) []byte {
	var keys []smime.Identity
	seen := map[string]bool{}
	add := func(ids []pki.Identity, err error) {
		if err != nil && !errors.Is(err, pki.ErrNotFound) {
			m.log.Warn("looking up decryption keys", "err", err)
		}
		for _, id := range ids {
			if !seen[id.Serial] {
				seen[id.Serial] = true
				keys = append(keys, smime.Identity{Cert: id.Certificate, Chain: id.Chain, Key: id.Key})
			}
		}
	}
	for _, r := range rcpts {
		add(m.pki.Identities(r))
	}
	for _, r := range rcpts {
		add(m.pki.DomainIdentities(domainOf(r)))
	}
	opened, err := smime.Open(ctx, msg, keys, smime.VerifyOptions{
		Roots:         m.pki.Anchors(),
		Intermediates: m.pki.Intermediates(),
		Now:           m.now,
		Revocation:    m.revocation,
		AuthServID:    m.hostname,
	})
	if err != nil {
		m.log.Info("S/MIME not verified", "verdict", opened.Result.Verdict, "err", err)
	}
	hdr := opened.Result.Header(m.hostname)
	out := make([]byte, 0, len(hdr)+len(opened.Message))
	return append(append(out, hdr...), opened.Message...)
}

func (m *mailSecurity) revocation(ctx context.Context, cert, issuer *x509.Certificate) (smime.RevocationResult, error) {
	st, err := m.pki.CheckRevocation(ctx, cert, issuer)
	if err != nil {
		return smime.RevocationResult{Status: "unknown", Detail: err.Error()}, nil
	}
	return smime.RevocationResult{Status: st.State.String(), Detail: st.Summary()}, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}
