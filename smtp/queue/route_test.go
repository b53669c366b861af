package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/directory"
)

// fakeResolver answers from tables; a missing name is "not found".
type fakeResolver struct {
	mx    map[string][]*net.MX
	hosts map[string][]string
	fail  error
}

func (f fakeResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	if mx, ok := f.mx[name]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// nopStore is a Store that routing tests never call.
type nopStore struct{ Store }

func testWorker(t *testing.T, res Resolver) *Worker {
	w, err := New(Config{
		Hostname:   "mx.demo.test",
		Store:      nopStore{},
		Operators:  directory.NewTrust(nil),
		ClientCert: func() (*tls.Certificate, error) { return nil, errors.New("none") },
		Resolver:   res,
		Routes:     map[string]string{"Routed.TEST": "10.0.0.2:2525"},
	})
	require.NoError(t, err)
	return w
}

func TestTargets(t *testing.T) {
	res := fakeResolver{
		mx: map[string][]*net.MX{
			"b.test":    {{Host: "mx1.b.test.", Pref: 10}, {Host: "mx2.b.test.", Pref: 20}},
			"null.test": {{Host: ".", Pref: 0}},
		},
		hosts: map[string][]string{
			"mx1.b.test":    {"192.0.2.1", "2001:db8::1"},
			"mx2.b.test":    {"192.0.2.2"},
			"implicit.test": {"192.0.2.3"},
		},
	}
	w := testWorker(t, res)
	ctx := context.Background()

	got, err := w.targets(ctx, "b.test")
	require.NoError(t, err)
	assert.Equal(t, []target{
		{host: "mx1.b.test", addr: "192.0.2.1:25"},
		{host: "mx1.b.test", addr: "[2001:db8::1]:25"},
		{host: "mx2.b.test", addr: "192.0.2.2:25"},
	}, got, "MX by preference, port 25, the MX name for TLS")

	got, err = w.targets(ctx, "implicit.test")
	require.NoError(t, err)
	assert.Equal(t, []target{{host: "implicit.test", addr: "192.0.2.3:25"}}, got, "RFC 5321 5.1 implicit MX")

	got, err = w.targets(ctx, "routed.test")
	require.NoError(t, err)
	assert.Equal(t, []target{{host: "10.0.0.2", addr: "10.0.0.2:2525"}}, got, "a configured route wins, domain case-insensitive")

	_, err = w.targets(ctx, "null.test")
	var re *relayError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.permanent, "RFC 7505 null MX")
	assert.Equal(t, "5.1.10", re.status)

	_, err = w.targets(ctx, "nowhere.test")
	require.ErrorAs(t, err, &re)
	assert.False(t, re.permanent, "an unresolvable domain may be fixed")

	w = testWorker(t, fakeResolver{fail: &net.DNSError{Err: "server misbehaving", Name: "b.test", IsTemporary: true}})
	_, err = w.targets(ctx, "b.test")
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "4.4.3", re.status)
}

func TestWants(t *testing.T) {
	assert.True(t, wants(nil, "FAILURE"), "RFC 3461 4.1 default")
	assert.True(t, wants(nil, "DELAY"))
	assert.False(t, wants(nil, "SUCCESS"))
	assert.False(t, wants([]string{"NEVER"}, "FAILURE"))
	assert.True(t, wants([]string{"success", "failure"}, "SUCCESS"))
	assert.False(t, wants([]string{"SUCCESS"}, "DELAY"))
}

func TestHasExtension(t *testing.T) {
	ehlo := "mx.remote.test Hello\nPIPELINING\nSTARTTLS\nSIZE 1000"
	assert.True(t, hasExtension(ehlo, "STARTTLS"))
	assert.True(t, hasExtension(ehlo, "size"))
	assert.False(t, hasExtension("STARTTLS is not here\nSIZE 10", "STARTTLS"), "the greeting line is not an extension")
}
