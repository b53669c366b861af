package migrate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConvert(t *testing.T) {
	for _, c := range []struct {
		in   any
		typ  string
		want any
	}{
		{int64(1), "boolean", true},
		{int64(0), "boolean", false},
		{"abc", "bytea", []byte("abc")},
		{[]byte("été"), "text", "été"},
		{"a\x00b", "text", "a\uFFFDb"},
		{"\xff\xfeok", "text", "\uFFFDok"},
		{int64(42), "bigint", int64(42)},
		{int64(3), "double precision", float64(3)},
		{nil, "text", nil},
	} {
		got, err := convert(c.in, c.typ)
		require.NoError(t, err, "%#v as %s", c.in, c.typ)
		assert.Equal(t, c.want, got, "%#v as %s", c.in, c.typ)
	}
	_, err := convert("x", "bigint")
	require.Error(t, err, "a string in an integer column is a clear error, not a silent zero")
}

func TestRowDigest(t *testing.T) {
	rows := [][]any{{int64(1), "a", true}, {int64(2), []byte("b"), false}, {int64(3), nil, true}}
	var fwd, rev rowDigest
	for i := range rows {
		fwd.add(rows[i])
		rev.add(rows[len(rows)-1-i])
	}
	assert.Equal(t, fwd, rev, "the digest ignores row order")
	// Text read back as []byte or string hashes alike; int32 as int64.
	var a, b rowDigest
	a.add([]any{int32(7), "x"})
	b.add([]any{int64(7), []byte("x")})
	assert.Equal(t, a, b)
	var c rowDigest
	c.add([]any{int64(1), "a", false})
	c.add(rows[1])
	c.add(rows[2])
	assert.NotEqual(t, fwd, c, "one changed value changes the digest")
}
