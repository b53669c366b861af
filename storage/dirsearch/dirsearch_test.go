package dirsearch

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func TestNew(t *testing.T) {
	s, err := New(storage.DirectoryQuery{Name: " Jean-Pierre  DE L'ÉTANG a b c d e f g", Limit: 1000, Offset: 3})
	require.NoError(t, err)
	assert.Equal(t, "jean pierre de l etang a b c", s.NameKey, "folded, at most MaxNameWords words")
	assert.Equal(t, MaxLimit, s.Q.Limit)
	assert.Equal(t, 3+MaxLimit+1, s.Max)
	assert.Len(t, s.Kinds, 3)
	for _, q := range []storage.DirectoryQuery{{}, {Name: "-"}, {Name: "a", Limit: -1}, {Name: "a", Offset: MaxOffset + 1},
		{Name: "a", Kinds: []storage.EntryKind{storage.KindTrust}}} {
		_, err := New(q)
		assert.ErrorIs(t, err, storage.ErrInvalid, "%+v", q)
	}
}

func TestEnough(t *testing.T) {
	s := &Spec{Max: 2}
	c := func(key, sort string) Candidate { return Candidate{Key: key, Sort: sort} }
	assert.False(t, s.Enough([]Candidate{c("a", "1"), c("b", "2")}), "nothing after the last key")
	assert.False(t, s.Enough([]Candidate{c("a", "1"), c("b", "2"), c("c", "2")}), "a tie with the last key")
	assert.True(t, s.Enough([]Candidate{c("a", "1"), c("b", "2"), c("c", "3")}))
	assert.False(t, s.Enough([]Candidate{c("a", "1"), c("a", "1"), c("a", "2")}), "one key")
}

// owners answers Resolve from maps.
type owners struct {
	rows     map[string]string // address -> imported professional
	imported map[string]bool
}

func (o owners) ImportedOwners(addrs []any, fn func(addr, prof string)) error {
	for _, a := range addrs {
		if a, ok := a.(string); ok && o.rows[a] != "" {
			fn(a, o.rows[a])
		}
	}
	return nil
}

func (o owners) Imported(ids []any, fn func(id string)) error {
	for _, id := range ids {
		if id, ok := id.(string); ok && o.imported[id] {
			fn(id)
		}
	}
	return nil
}

func TestResolve(t *testing.T) {
	s, err := New(storage.DirectoryQuery{Name: "mar", Limit: 2})
	require.NoError(t, err)
	s.Candidates = []Candidate{
		{Kind: storage.KindMailbox, Key: "claire@x", Sort: "2martin\x01claire", Prof: "P1"}, // P1 imported: its hit
		{Kind: storage.KindProfessional, Key: "P1", Sort: "0martin\x01claire"},
		{Kind: storage.KindMailbox, Key: "lucie@x", Sort: "2marais\x01lucie", Prof: "P9"}, // P9 not imported
		{Kind: storage.KindOrganisation, Key: "O1", Sort: "2marin"},
		{Kind: storage.KindMailbox, Key: "anon@x", Sort: "2mart", Prof: ""}, // looked up: owned by P2
	}
	ranked, err := s.Resolve(owners{rows: map[string]string{"anon@x": "P2"}, imported: map[string]bool{"P1": true, "P2": true}})
	require.NoError(t, err)
	var keys []string
	for _, c := range ranked {
		keys = append(keys, string(c.Kind)+":"+c.Key)
	}
	assert.Equal(t, []string{"professional:P1", "mailbox:lucie@x", "organisation:O1", "professional:P2"}, keys)
	page, more := s.Page(ranked)
	assert.Len(t, page, 2)
	assert.True(t, more)
	s.Q.Offset = 4
	page, more = s.Page(ranked)
	assert.Empty(t, page)
	assert.False(t, more)
}

func TestTier(t *testing.T) {
	// Exact before prefix; family direction before given direction.
	assert.Less(t, Tier(1), Tier(3))
	assert.Less(t, Tier(3), Tier(0))
	assert.Less(t, Tier(0), Tier(2))
}
