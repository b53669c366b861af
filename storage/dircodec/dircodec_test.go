package dircodec

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func TestRoundTrip(t *testing.T) {
	addr := storage.PostalAddress{Number: "12", StreetType: "Rue", Street: "des Lilas", PostalCode: "75011", City: "PARIS", Country: "FR"}
	p := storage.Professional{ID: "899900000011", IDType: storage.IDTypeRPPS, Identifier: "99900000011", FamilyName: "DUPRÉ",
		GivenName: "Éléonore", ProfessionCode: "10", SpecialtyCode: "SM54"}
	var p2 storage.Professional
	require.NoError(t, DecodeProfessional(EncodeProfessional(nil, &p), &p2))
	assert.Equal(t, p, p2)

	a := storage.Activity{Professional: p.ID, Key: "a1", Organisation: "S1", ModeCode: "L", PostalCode: "75011", City: "PARIS"}
	var a2 storage.Activity
	require.NoError(t, DecodeActivity(EncodeActivity(nil, &a), &a2))
	assert.Equal(t, a, a2)

	o := storage.Organisation{ID: "S1", FINESS: "990000011", Name: "Centre", Address: addr, Phone: "0100000000", Sector: "Santé"}
	var o2 storage.Organisation
	require.NoError(t, DecodeOrganisation(EncodeOrganisation(nil, &o), &o2))
	assert.Equal(t, o, o2)

	m := storage.MailboxEntry{Address: "a@b.example", Type: storage.MailboxPersonal, FamilyName: "X", Digitization: true, StructureAddress: addr}
	var m2 storage.MailboxEntry
	require.NoError(t, DecodeMailbox(EncodeMailbox(nil, &m), &m2))
	assert.Equal(t, m, m2)

	tr := storage.TrustEntry{Domain: "a.example", OperatorDN: "CN=mx", OperatorKey: "cn=mx", SupportContact: "s@a.example"}
	var tr2 storage.TrustEntry
	require.NoError(t, DecodeTrust(EncodeTrust(nil, &tr), &tr2))
	assert.Equal(t, tr, tr2)
}

// TestBytes pins the encoding: both stores and every existing row hold
// these bytes, so a change here is a data migration.
func TestBytes(t *testing.T) {
	tr := storage.TrustEntry{Domain: "a.example", OperatorKey: "cn=mx"}
	assert.Equal(t, "09612e6578616d706c65000005636e3d6d780000", hex.EncodeToString(EncodeTrust(nil, &tr)))
	// Fields appended later decode as "" from older rows.
	var p storage.Professional
	require.NoError(t, DecodeProfessional([]byte("\x03abc"), &p))
	assert.Equal(t, storage.Professional{ID: "abc"}, p)
	assert.True(t, errors.Is(DecodeProfessional([]byte("\x09ab"), &p), errCodec), "a length past the end")
}

// TestEncodeAllocs: encoding into a buffer with room allocates nothing
// (the import's hot path reuses one buffer).
func TestEncodeAllocs(t *testing.T) {
	p := storage.Professional{ID: "899900000011", FamilyName: "MARTIN", GivenName: "Claire", ProfessionCode: "10"}
	m := storage.MailboxEntry{Address: "a@b.example", FamilyName: "MARTIN", StructureAddress: storage.PostalAddress{City: "PARIS"}}
	buf := make([]byte, 0, 512)
	n := testing.AllocsPerRun(100, func() {
		buf = EncodeProfessional(buf[:0], &p)
		buf = EncodeMailbox(buf[:0], &m)
	})
	assert.Zero(t, n)
}

func TestTable(t *testing.T) {
	name, err := Table(storage.KindActivity)
	require.NoError(t, err)
	assert.Equal(t, "dir_activities", name)
	_, err = Table("patient")
	assert.ErrorIs(t, err, storage.ErrInvalid)
}
