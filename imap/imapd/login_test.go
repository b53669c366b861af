package imapd_test

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestLoginBeforeStartTLSRefused(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) {
		t.Errorf("capabilities before TLS = %v, want LOGINDISABLED and STARTTLS", caps)
	}
	if err := c.Login(testUser, testPassword).Wait(); err == nil {
		t.Fatal("LOGIN accepted on a plaintext connection")
	}
}

func TestStartTLSLogin(t *testing.T) {
	e := newEnv(t)
	c, err := imapclient.DialStartTLS(e.ln.Addr().String(), &imapclient.Options{TLSConfig: e.clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev2, imap.CapIMAP4rev1, imap.CapIdle, imap.CapMove, imap.CapUIDPlus, imap.CapSpecialUse, imap.CapESearch, imap.CapNamespace, "APPENDLIMIT=67108864"} {
		if !caps.Has(want) {
			t.Errorf("missing capability %s in %v", want, caps)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestWrongPasswordThenThrottled(t *testing.T) {
	e := newEnv(t)
	c, err := imapclient.DialTLS(e.tlsLn.Addr().String(), &imapclient.Options{TLSConfig: e.clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(testUser, "wrong").Wait()
	if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("wrong password: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	// Unknown account: the same answer.
	err = c.Login("nobody@example.test", "wrong").Wait()
	if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("unknown account: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	var throttled bool
	for range 10 {
		err = c.Login(testUser, "wrong").Wait()
		if imapCode(err) == imap.ResponseCodeUnavailable {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatalf("never throttled, last error %v", err)
	}
	// Even the right password is refused while throttled.
	if err := c.Login(testUser, testPassword).Wait(); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Fatalf("right password while throttled: %v, want NO [UNAVAILABLE]", err)
	}
}
