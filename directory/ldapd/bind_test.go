package ldapd_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/directory/ldapd"
)

func TestRootDSEAnonymous(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c, err := ldap.DialURL("ldap://" + e.plain) // no TLS, no bind
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := search(c, "", ldap.ScopeBaseObject, 0, "(objectClass=*)", "namingContexts", "supportedLDAPVersion", "supportedExtension", "vendorName", "supportedSASLMechanisms")
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("root DSE: %v", err)
	}
	dse := r.Entries[0]
	for attr, want := range map[string]string{
		"namingContexts": base, "supportedLDAPVersion": "3", "supportedExtension": "1.3.6.1.4.1.1466.20037", "vendorName": "Relais",
	} {
		if got := dse.GetAttributeValue(attr); got != want {
			t.Errorf("%s = %q, want %q", attr, got, want)
		}
	}
	if v := dse.GetAttributeValues("supportedSASLMechanisms"); len(v) != 0 {
		t.Errorf("supportedSASLMechanisms = %v, want none", v)
	}
}

func TestAccessControl(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	filter := "(|(cn=mart*)(mail=mart*))"

	// Plaintext: search and bind need TLS first (RFC 4513 5.1.3, 6.3).
	plain, err := ldap.DialURL("ldap://" + e.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := search(plain, base, ldap.ScopeWholeSubtree, 0, filter, "mail"); resultCode(err) != ldap.LDAPResultConfidentialityRequired {
		t.Errorf("plaintext search: %v, want confidentialityRequired", err)
	}
	if err := plain.Bind(userAddr, userPass); resultCode(err) != ldap.LDAPResultConfidentialityRequired {
		t.Errorf("plaintext bind: %v, want confidentialityRequired", err)
	}

	// TLS but anonymous: insufficientAccessRights.
	c := e.dialStartTLS(t)
	r, err := search(c, base, ldap.ScopeWholeSubtree, 0, filter, "mail")
	if resultCode(err) != ldap.LDAPResultInsufficientAccessRights || (r != nil && len(r.Entries) > 0) {
		t.Errorf("anonymous search: %v, want insufficientAccessRights", err)
	}
	// Bad password, unknown user, bad DN.
	for _, name := range []string{userAddr, "mail=" + userAddr + ",ou=people," + base, "nobody@demo.mssante.test", "cn=admin," + base} {
		if err := c.Bind(name, "wrong password"); resultCode(err) != ldap.LDAPResultInvalidCredentials {
			t.Errorf("bind %s with a bad password: %v, want invalidCredentials", name, err)
		}
	}
	// A failed bind leaves the connection anonymous.
	if _, err := search(c, base, ldap.ScopeWholeSubtree, 0, filter, "mail"); resultCode(err) != ldap.LDAPResultInsufficientAccessRights {
		t.Errorf("search after failed bind: %v", err)
	}
	// Unauthenticated bind (name, no password) is refused, RFC 4513 5.1.2.
	if err := c.UnauthenticatedBind(userAddr); resultCode(err) != ldap.LDAPResultUnwillingToPerform {
		t.Errorf("unauthenticated bind: %v, want unwillingToPerform", err)
	}
	// The mail= DN form binds too, and then searching works.
	if err := c.Bind("mail="+userAddr+",ou=people,"+base, userPass); err != nil {
		t.Fatalf("bind with a mail= DN: %v", err)
	}
	if r, err := search(c, base, ldap.ScopeWholeSubtree, 0, filter, "mail"); err != nil || len(r.Entries) == 0 {
		t.Errorf("search after bind: %v", err)
	}
}

func TestAllowPlaintext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{AllowPlaintext: true})
	c, err := ldap.DialURL("ldap://" + e.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(userAddr, userPass); err != nil {
		t.Fatalf("plaintext bind allowed by config: %v", err)
	}
	if r, err := search(c, base, ldap.ScopeWholeSubtree, 0, "(sn=dupr*)", "mail"); err != nil || !mails(r)[remoteHel] {
		t.Errorf("plaintext search: %v", err)
	}
}

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	e.dir.panicOn = "boom"
	e.wantPanics = 1
	c := e.dialBound(t)
	other := e.dialBound(t)
	_, err := search(c, base, ldap.ScopeWholeSubtree, 0, "(cn=boom*)", "mail")
	if resultCode(err) != ldap.LDAPResultOther {
		t.Errorf("panicking search: %v, want other", err)
	}
	if e.srv.Panics() != 1 {
		t.Errorf("Panics() = %d, want 1", e.srv.Panics())
	}
	// The same session and another one go on.
	for _, cc := range []*ldap.Conn{c, other} {
		if r, err := search(cc, base, ldap.ScopeWholeSubtree, 0, "(sn=dupr*)", "mail"); err != nil || !mails(r)[remoteHel] {
			t.Errorf("search after the panic: %v", err)
		}
	}
}

func TestShutdownNotifiesClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	raw, err := net.Dial("tcp", e.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	// A root DSE search, built by hand, so that the server surely holds
	// the connection before Shutdown.
	fp, err := ldap.CompileFilter("(objectClass=*)")
	if err != nil {
		t.Fatal(err)
	}
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "search")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "base"))
	for _, v := range []int64{0, 0, 0, 0} { // scope, deref, size, time
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, v, ""))
	}
	req.Children[1].Tag, req.Children[2].Tag = ber.TagEnumerated, ber.TagEnumerated
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "typesOnly"))
	req.AppendChild(fp)
	req.AppendChild(ber.NewSequence("attributes"))
	msg := ber.NewSequence("LDAPMessage")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "id"))
	msg.AppendChild(req)
	if _, err := raw.Write(msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := ber.ReadPacket(raw)
		if err != nil {
			t.Fatalf("reading the search response: %v", err)
		}
		if p.Children[1].Tag == ldap.ApplicationSearchResultDone {
			break
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// RFC 4511 4.4.1: messageID 0, ExtendedResponse, responseName
	// 1.3.6.1.4.1.1466.20036, then the connection closes.
	p, err := ber.ReadPacket(raw)
	if err != nil {
		t.Fatalf("reading the notice: %v", err)
	}
	op := p.Children[1]
	if id := p.Children[0].Value; id != int64(0) || op.Tag != ldap.ApplicationExtendedResponse ||
		len(op.Children) < 4 || op.Children[3].Data.String() != "1.3.6.1.4.1.1466.20036" {
		t.Fatalf("not a Notice of Disconnection: id %v tag %d", id, op.Tag)
	}
	if _, err := ber.ReadPacket(raw); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after the notice: %v, want EOF", err)
	}
	// The listener is closed.
	if nc, err := net.DialTimeout("tcp", e.plain, time.Second); err == nil {
		_ = nc.Close()
		t.Error("a connection was accepted after Shutdown")
	}
}
