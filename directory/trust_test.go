package directory_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"log/slog"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// The trust list as published writes DNs its own way (spacing, case); an
// operator's certificate encodes the same subject in ASN.1. They must meet.
func TestTrustSpace(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })

	listed := "CN=mx.operateur-a.test, OU=123456789, O=Opérateur A, ST=Haute-Garonne (31), C=FR"
	key, err := directory.CanonicalDN(listed)
	require.NoError(t, err)
	var entries []storage.TrustEntry
	for _, d := range []string{"operateur-a.mssante.test", "clinique.mssante.test"} {
		entries = append(entries, storage.TrustEntry{Domain: d, Description: "synthetic", OperatorDN: listed, OperatorKey: key})
	}
	require.NoError(t, st.ApplyDirectory(ctx, storage.DirectoryBatch{Source: storage.SourceTrustList, Trust: entries}))
	trust := directory.NewTrust(st)

	for domain, want := range map[string]bool{
		"operateur-a.mssante.test":  true,
		"Clinique.MSSante.test.":    true,
		"ailleurs.mssante.test":     false,
		"":                          false,
		"operateur-a.mssante.test2": false,
	} {
		got, err := trust.DomainTrusted(ctx, domain)
		require.NoError(t, err, domain)
		assert.Equal(t, want, got, domain)
	}

	// The operator's certificate: subject built attribute by attribute in
	// the certificate's own order (C first), values in another case.
	cert := certificateWithSubject(t, pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "FR"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 8}, Value: "Haute-Garonne (31)"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "OPÉRATEUR A"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "123456789"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "mx.operateur-a.test"}},
	})
	op, err := trust.PeerOperator(ctx, cert)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"operateur-a.mssante.test", "clinique.mssante.test"}, op.Domains)
	assert.True(t, op.Serves("CLINIQUE.mssante.test"))
	assert.False(t, op.Serves("ailleurs.mssante.test"))

	// Another organisation with the same host name is not that operator.
	impostor := certificateWithSubject(t, pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "FR"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Opérateur B"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "mx.operateur-a.test"}},
	})
	_, err = trust.PeerOperator(ctx, impostor)
	assert.ErrorIs(t, err, directory.ErrNotTrusted)
	_, err = trust.PeerOperator(ctx, nil)
	assert.ErrorIs(t, err, directory.ErrNotTrusted)
}

func certificateWithSubject(t *testing.T, subject pkix.RDNSequence) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	raw, err := asn1.Marshal(subject)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), RawSubject: raw,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}
