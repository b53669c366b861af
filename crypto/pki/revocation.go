package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// RevocationState is the outcome of a revocation check.
type RevocationState int

// The outcomes of a revocation check.
const (
	RevocationUnknown RevocationState = iota // no answer: Detail says why
	RevocationGood
	RevocationRevoked
)

func (s RevocationState) String() string {
	switch s {
	case RevocationGood:
		return "good"
	case RevocationRevoked:
		return "revoked"
	}
	return "unknown"
}

// RevocationStatus is what CheckRevocation found.
type RevocationStatus struct {
	State RevocationState
	// Reason and RevokedAt are set when State is RevocationRevoked.
	Reason    RevocationReason
	RevokedAt time.Time
	// Source is where the answer came from: "authority records" or the
	// CRL's URL.
	Source string
	// Detail says why the state is unknown.
	Detail string
}

// Limits of the CRL fetcher.
const (
	maxCRLBytes   = 20 << 20
	crlTimeout    = 10 * time.Second
	crlRetryAfter = 5 * time.Minute // a failed fetch is not retried sooner
	maxCachedCRLs = 1024
)

type crlCache struct {
	mu      sync.Mutex
	entries map[string]*crlEntry
}

type crlEntry struct {
	crl     *x509.RevocationList
	err     error
	fetched time.Time
	// revoked maps serial (hex) to its entry.
	revoked map[string]x509.RevocationListEntry
}

// CheckRevocation says whether cert, issued by issuer, is revoked. For
// the CAs of this authority the answer comes from its records; for others,
// from the CRL at the certificate's CRL distribution point (HTTP or HTTPS),
// fetched with a bounded size and a timeout, its signature checked against
// issuer, and kept until its nextUpdate. When no CRL can be had, the state
// is RevocationUnknown with the reason in Detail and a nil error: the
// caller decides what unknown means. The error is for misuse (nil
// certificates).
func (a *Authority) CheckRevocation(ctx context.Context, cert, issuer *x509.Certificate) (RevocationStatus, error) {
	if cert == nil || issuer == nil {
		return RevocationStatus{}, errors.New("pki: revocation check without a certificate or its issuer")
	}
	st, err := a.current()
	if err != nil {
		return RevocationStatus{}, err
	}
	for _, ca := range st.cas {
		if bytes.Equal(ca.DER, issuer.Raw) {
			return a.ownRevocation(st, cert, ca), nil
		}
	}
	if len(cert.CRLDistributionPoints) == 0 {
		return RevocationStatus{State: RevocationUnknown, Detail: "the certificate names no CRL distribution point"}, nil
	}
	var details []string
	for _, u := range cert.CRLDistributionPoints {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") {
			details = append(details, fmt.Sprintf("%s: not an HTTP URL", u))
			continue
		}
		e := a.fetchCRL(ctx, u, issuer)
		if e.err != nil {
			details = append(details, e.err.Error())
			continue
		}
		if re, ok := e.revoked[cert.SerialNumber.Text(16)]; ok {
			return RevocationStatus{State: RevocationRevoked, Reason: RevocationReason(re.ReasonCode), RevokedAt: re.RevocationTime, Source: u}, nil
		}
		return RevocationStatus{State: RevocationGood, Source: u}, nil
	}
	return RevocationStatus{State: RevocationUnknown, Detail: joinDetails(details)}, nil
}

func joinDetails(d []string) string {
	out := ""
	for i, s := range d {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

func (a *Authority) ownRevocation(st *state, cert *x509.Certificate, ca *record) RevocationStatus {
	r := st.bySerial[SerialString(cert)]
	if r == nil || r.Issuer != ca.Name || !bytes.Equal(r.DER, cert.Raw) {
		// Not in our records: a certificate we never issued, though its
		// issuer is ours. Nothing on our CRL, but say so.
		return RevocationStatus{State: RevocationUnknown, Source: "authority records", Detail: "issued by this authority's " + ca.Name + " CA but not in its records"}
	}
	if r.Revoked != nil {
		return RevocationStatus{State: RevocationRevoked, Reason: RevocationReason(r.Reason), RevokedAt: *r.Revoked, Source: "authority records"}
	}
	return RevocationStatus{State: RevocationGood, Source: "authority records"}
}

// fetchCRL returns the cached CRL of url, fetching it when absent or past
// its nextUpdate.
func (a *Authority) fetchCRL(ctx context.Context, u string, issuer *x509.Certificate) *crlEntry {
	key := u + "\x00" + string(issuer.Raw)
	now := a.now()
	a.crls.mu.Lock()
	e := a.crls.entries[key]
	a.crls.mu.Unlock()
	if e != nil {
		if e.err == nil && now.Before(e.crl.NextUpdate) {
			return e
		}
		if e.err != nil && now.Sub(e.fetched) < crlRetryAfter {
			return e
		}
	}
	e = a.downloadCRL(ctx, u, issuer, now)
	a.crls.mu.Lock()
	if len(a.crls.entries) >= maxCachedCRLs {
		clear(a.crls.entries) // rare: start again rather than track use
	}
	a.crls.entries[key] = e
	a.crls.mu.Unlock()
	return e
}

func (a *Authority) downloadCRL(ctx context.Context, u string, issuer *x509.Certificate, now time.Time) *crlEntry {
	fail := func(format string, args ...any) *crlEntry {
		return &crlEntry{err: fmt.Errorf("CRL %s: "+format, append([]any{u}, args...)...), fetched: now}
	}
	client := a.crlClient()
	ctx, cancel := context.WithTimeout(ctx, crlTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail("%v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail("unreachable: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCRLBytes+1))
	if err != nil {
		return fail("reading: %v", err)
	}
	if len(body) > maxCRLBytes {
		return fail("larger than %d bytes", maxCRLBytes)
	}
	if b := pemDecodeCRL(body); b != nil {
		body = b // some publish PEM although RFC 5280 4.2.1.13 says DER
	}
	crl, err := parseCRL(body)
	if err != nil {
		return fail("%v", err)
	}
	// RFC 5280 6.3.3 (f), (g): the CRL's issuer is the certificate's issuer
	// and its signature verifies with the issuer's key.
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return fail("issued by %s, not by %s", crl.Issuer, issuer.Subject)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fail("bad signature: %v", err)
	}
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
		return fail("out of date (nextUpdate %s)", crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	e := &crlEntry{crl: crl, fetched: now, revoked: make(map[string]x509.RevocationListEntry, len(crl.RevokedCertificateEntries))}
	for _, re := range crl.RevokedCertificateEntries {
		e.revoked[re.SerialNumber.Text(16)] = re
	}
	if crl.NextUpdate.IsZero() {
		crl.NextUpdate = now.Add(time.Hour)
	}
	return e
}

// parseCRL parses untrusted DER without letting a library panic escape.
func parseCRL(der []byte) (crl *x509.RevocationList, err error) {
	defer func() {
		if p := recover(); p != nil {
			crl, err = nil, fmt.Errorf("malformed CRL (%v)", p)
		}
	}()
	crl, err = x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("malformed CRL: %w", err)
	}
	return crl, nil
}

func pemDecodeCRL(b []byte) []byte {
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		return nil
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "X509 CRL" {
		return nil
	}
	return blk.Bytes
}

// crlClient is Options.HTTPClient, or a client that trusts the system's
// roots and this authority's anchors (a CRL distribution point may be
// HTTPS on another Relais).
func (a *Authority) crlClient() *http.Client {
	if a.opts.HTTPClient != nil {
		return a.opts.HTTPClient
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if st, err := a.current(); err == nil {
		pool.AddCert(st.cas[CARoot].cert)
		for _, c := range st.anchors {
			pool.AddCert(c)
		}
	}
	return &http.Client{
		Timeout: crlTimeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: crlTimeout,
			DisableKeepAlives:   true, // fetches are rare; keep no idle connections
		},
	}
}

// Summary is a one-line description for headers and logs: the reason and
// date when revoked, where the answer came from when good, why when
// unknown.
func (s RevocationStatus) Summary() string {
	switch s.State {
	case RevocationRevoked:
		return fmt.Sprintf("%s on %s", s.Reason, s.RevokedAt.UTC().Format(time.DateOnly))
	case RevocationGood:
		return s.Source
	}
	return s.Detail
}
