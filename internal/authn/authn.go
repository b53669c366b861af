package authn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// Errors of Authenticate. Protocol code maps both to its "authentication
// failed" reply without saying which one happened.
var (
	ErrBadCredentials = errors.New("authn: invalid credentials")
	ErrThrottled      = errors.New("authn: too many failed attempts, try later")
)

// Accounts is what Authenticator needs from storage.
type Accounts interface {
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
}

// Authenticator verifies username/password pairs against stored argon2id
// hashes, throttling failures per account and per client IP.
type Authenticator struct {
	accounts Accounts
	throttle *Throttle
	hashing  chan struct{} // one slot per verification running
	// dummy is verified when the account does not exist so that timing does
	// not tell which addresses exist; made on first use.
	dummyOnce sync.Once
	dummy     string
}

// New returns an Authenticator over accounts with the given throttle
// (NewThrottle() when nil).
func New(accounts Accounts, throttle *Throttle) *Authenticator {
	if throttle == nil {
		throttle = NewThrottle()
	}
	return &Authenticator{accounts: accounts, throttle: throttle,
		hashing: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

// Authenticate returns the account whose address is username when password
// matches. remote is the client's address (its IP is the throttle key).
func (a *Authenticator) Authenticate(ctx context.Context, username, password string, remote net.Addr) (storage.Account, error) {
	userKey := "user:" + strings.ToLower(strings.TrimSpace(username))
	ipKey := "ip:" + hostOf(remote)
	if a.throttle.Wait(userKey) > 0 || a.throttle.Wait(ipKey) > 0 {
		return storage.Account{}, ErrThrottled
	}
	acct, err := a.accounts.AccountByAddress(ctx, strings.TrimSpace(username))
	hash := acct.PasswordHash
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			return storage.Account{}, fmt.Errorf("authn: looking up account: %w", err)
		}
		a.dummyOnce.Do(func() { a.dummy, _ = HashPassword("relais-dummy-password", DefaultParams) })
		hash = a.dummy
	}
	// argon2id takes 64 MiB and all of a core for a while: more
	// verifications at once than there are cores only add memory (a burst
	// of 1,000 logins would ask for 64 GiB), so the rest wait their turn.
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return storage.Account{}, fmt.Errorf("authn: %w", ctx.Err())
	}
	ok, verr := VerifyPassword(hash, password)
	<-a.hashing
	if err != nil || verr != nil || !ok {
		a.throttle.Fail(userKey)
		a.throttle.Fail(ipKey)
		if verr != nil && err == nil {
			return storage.Account{}, fmt.Errorf("authn: account %d: %w", acct.ID, verr)
		}
		return storage.Account{}, ErrBadCredentials
	}
	a.throttle.Reset(userKey)
	return acct, nil
}

// Wait tells how long a login from remote for username is still refused.
func (a *Authenticator) Wait(username string, remote net.Addr) time.Duration {
	return max(a.throttle.Wait("user:"+strings.ToLower(strings.TrimSpace(username))), a.throttle.Wait("ip:"+hostOf(remote)))
}

func hostOf(addr net.Addr) string {
	if addr == nil {
		return "unknown"
	}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}
