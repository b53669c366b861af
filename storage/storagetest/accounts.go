package storagetest

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func testDomains(t *testing.T, e *env) {
	d, err := e.s.AddDomain(e.ctx, "Hopital.Example.COM")
	require.NoError(t, err)
	assert.Equal(t, "hopital.example.com", d.Name)
	_, err = e.s.AddDomain(e.ctx, "hopital.example.com")
	require.ErrorIs(t, err, storage.ErrExists)
	_, err = e.s.AddDomain(e.ctx, "EXAMPLE.ORG")
	require.ErrorIs(t, err, storage.ErrExists)

	ok, err := e.s.HasDomain(e.ctx, "HOPITAL.example.com")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = e.s.HasDomain(e.ctx, "unknown.example")
	require.NoError(t, err)
	assert.False(t, ok)

	ds, err := e.s.Domains(e.ctx)
	require.NoError(t, err)
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
		assert.False(t, d.Created.IsZero())
	}
	assert.Equal(t, []string{"example.org", "hopital.example.com"}, names)
}

func testAccounts(t *testing.T, e *env) {
	_, err := e.s.CreateAccount(e.ctx, "carol@unknown.example", "Carol", "h")
	require.ErrorIs(t, err, storage.ErrNotFound)

	a, err := e.s.CreateAccount(e.ctx, "Carol.Martin@EXAMPLE.org", "Carol", "h1")
	require.NoError(t, err)
	assert.Equal(t, "Carol.Martin@example.org", a.Address)
	assert.NotZero(t, a.ID)
	assert.NotEqual(t, e.alice.ID, a.ID)

	_, err = e.s.CreateAccount(e.ctx, "carol.martin@example.ORG", "Dup", "h")
	require.ErrorIs(t, err, storage.ErrExists)

	for _, addr := range []string{"carol.martin@example.org", "CAROL.MARTIN@EXAMPLE.ORG", "Carol.Martin@example.org"} {
		got, err := e.s.AccountByAddress(e.ctx, addr)
		require.NoError(t, err, addr)
		assert.Equal(t, a.ID, got.ID)
		assert.Equal(t, "Carol.Martin@example.org", got.Address)
		assert.Equal(t, "Carol", got.Name)
		assert.Equal(t, "h1", got.PasswordHash)
	}
	_, err = e.s.AccountByAddress(e.ctx, "nobody@example.org")
	require.ErrorIs(t, err, storage.ErrNotFound)

	require.NoError(t, e.s.SetPasswordHash(e.ctx, a.ID, "h2"))
	got, err := e.s.AccountByAddress(e.ctx, "carol.martin@example.org")
	require.NoError(t, err)
	assert.Equal(t, "h2", got.PasswordHash)
	require.ErrorIs(t, e.s.SetPasswordHash(e.ctx, 987654, "h"), storage.ErrNotFound)

	all, err := e.s.Accounts(e.ctx)
	require.NoError(t, err)
	assert.Len(t, all, 3)
}

func testDefaultMailboxes(t *testing.T, e *env) {
	ms, err := e.s.Mailboxes(e.ctx, e.alice.ID)
	require.NoError(t, err)
	var want []string
	uses := map[string]string{}
	for _, m := range storage.DefaultMailboxes {
		want = append(want, m.Name)
		uses[m.Name] = m.SpecialUse
	}
	sort.Strings(want)
	var got []string
	validities := map[uint32]bool{}
	for _, m := range ms {
		got = append(got, m.Name)
		assert.Equal(t, e.alice.ID, m.Account)
		assert.Equal(t, uses[m.Name], m.SpecialUse, m.Name)
		assert.True(t, m.Subscribed, m.Name)
		assert.NotZero(t, m.UIDValidity)
		assert.False(t, validities[m.UIDValidity], "UIDVALIDITY reused")
		validities[m.UIDValidity] = true
		assert.Equal(t, uint32(1), m.UIDNext)
		assert.NotZero(t, m.HighestModSeq)
	}
	assert.Equal(t, want, got, "sorted by name")

	bobs, err := e.s.Mailboxes(e.ctx, e.bob.ID)
	require.NoError(t, err)
	require.Len(t, bobs, len(ms))
	for i := range bobs {
		assert.NotEqual(t, ms[i].ID, bobs[i].ID)
	}
}
