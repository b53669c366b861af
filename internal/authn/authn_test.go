package authn

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

var cheap = Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func TestHashAndVerify(t *testing.T) {
	h, err := HashPassword("correct horse", cheap)
	require.NoError(t, err)
	assert.Regexp(t, `^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`, h)
	ok, err := VerifyPassword(h, "correct horse")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = VerifyPassword(h, "wrong")
	require.NoError(t, err)
	assert.False(t, ok)

	h2, err := HashPassword("correct horse", cheap)
	require.NoError(t, err)
	assert.NotEqual(t, h, h2, "salts must differ")
}

func TestVerifyRejectsMalformed(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdA$a2V5",
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdA$a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$a2V5", // absurd memory
		"$argon2id$v=19$m=1024,t=1,p=1$!!$a2V5",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$",
	} {
		_, err := VerifyPassword(h, "x")
		assert.ErrorIs(t, err, ErrMalformedHash, h)
	}
}

func TestThrottleBacksOff(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 2, Base: time.Second, Max: 8 * time.Second, Window: time.Minute, Now: func() time.Time { return now }}
	th.Fail("k")
	th.Fail("k")
	assert.Zero(t, th.Wait("k"), "free failures")
	th.Fail("k")
	assert.Equal(t, time.Second, th.Wait("k"))
	th.Fail("k")
	assert.Equal(t, 2*time.Second, th.Wait("k"))
	for range 10 {
		th.Fail("k")
	}
	assert.Equal(t, 8*time.Second, th.Wait("k"), "capped")
	now = now.Add(2 * time.Minute)
	assert.Zero(t, th.Wait("k"), "forgotten after the window")
	th.Fail("k")
	th.Reset("k")
	assert.Zero(t, th.Wait("k"))
}

type accounts map[string]storage.Account

func (a accounts) AccountByAddress(_ context.Context, addr string) (storage.Account, error) {
	acct, ok := a[addr]
	if !ok {
		return storage.Account{}, storage.ErrNotFound
	}
	return acct, nil
}

func TestAuthenticateThrottlesPerAccountAndIP(t *testing.T) {
	h, err := HashPassword("s3cret", cheap)
	require.NoError(t, err)
	a := New(accounts{"dr@demo.test": {ID: 7, Address: "dr@demo.test", PasswordHash: h}}, &Throttle{Free: 1, Base: time.Minute, Max: time.Hour, Window: time.Hour, Now: time.Now})
	ip1 := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}
	ip2 := &net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 1}
	ctx := context.Background()

	acct, err := a.Authenticate(ctx, "dr@demo.test", "s3cret", ip1)
	require.NoError(t, err)
	assert.Equal(t, storage.AccountID(7), acct.ID)

	_, err = a.Authenticate(ctx, "dr@demo.test", "bad", ip1)
	assert.ErrorIs(t, err, ErrBadCredentials)
	_, err = a.Authenticate(ctx, "dr@demo.test", "bad", ip1)
	assert.ErrorIs(t, err, ErrBadCredentials)
	// Now throttled for this account even with the right password, from any IP.
	_, err = a.Authenticate(ctx, "dr@demo.test", "s3cret", ip2)
	assert.ErrorIs(t, err, ErrThrottled)
	// And the IP is throttled for other accounts too.
	_, err = a.Authenticate(ctx, "other@demo.test", "x", ip1)
	assert.ErrorIs(t, err, ErrThrottled)
	// Unknown accounts fail like wrong passwords.
	_, err = a.Authenticate(ctx, "nobody@demo.test", "x", &net.TCPAddr{IP: net.ParseIP("127.0.0.3")})
	assert.ErrorIs(t, err, ErrBadCredentials)
}

// TestVerificationsBounded: when every verification slot is taken (as by
// a burst of logins), a login waits for one (giving up with its context)
// instead of starting one more 64 MiB argon2id; once a slot frees, logins
// go through, and a burst returns every slot.
func TestVerificationsBounded(t *testing.T) {
	hash, err := HashPassword("s3cret", cheap)
	require.NoError(t, err)
	a := New(accounts{"a@example.org": {ID: 1, Address: "a@example.org", PasswordHash: hash}}, nil)
	for range cap(a.hashing) {
		a.hashing <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = a.Authenticate(ctx, "a@example.org", "s3cret", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.ErrorIs(t, err, context.DeadlineExceeded, "no slot free: the login waited")
	<-a.hashing
	_, err = a.Authenticate(context.Background(), "a@example.org", "s3cret", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err, "one slot free: the login goes through")
	for range cap(a.hashing) - 1 {
		<-a.hashing
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Authenticate(context.Background(), "a@example.org", "s3cret", &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	assert.Zero(t, len(a.hashing), "every slot given back")
}
