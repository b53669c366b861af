package smtpd

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// fakeAccounts is a map-backed Accounts for decisions without a socket.
type fakeAccounts struct {
	domains  map[string]bool
	accounts map[string]storage.Account // lower-case address
	err      error
}

func (f fakeAccounts) HasDomain(_ context.Context, d string) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	return f.domains[d], nil
}

func (f fakeAccounts) AccountByAddress(_ context.Context, a string) (storage.Account, error) {
	if f.err != nil {
		return storage.Account{}, f.err
	}
	acct, ok := f.accounts[strings.ToLower(a)]
	if !ok {
		return storage.Account{}, storage.ErrNotFound
	}
	return acct, nil
}

var (
	dr     = storage.Account{ID: 1, Address: "dr@demo.test"}
	nurse  = storage.Account{ID: 2, Address: "nurse@demo.test"}
	elise  = storage.Account{ID: 3, Address: "élise@demo.test"}
	fakeDB = fakeAccounts{
		domains:  map[string]bool{"demo.test": true},
		accounts: map[string]storage.Account{"dr@demo.test": dr, "nurse@demo.test": nurse, "élise@demo.test": elise, "postmaster@demo.test": {ID: 9, Address: "postmaster@demo.test"}},
	}
)

func TestCheckReversePath(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode mode
		acct *storage.Account
		from string
		utf8 bool
		want error
	}{
		{"submission owner", modeSubmission, &dr, "dr@demo.test", false, nil},
		{"submission owner other case", modeSubmission, &dr, "Dr@DEMO.test", false, nil},
		{"submission not authenticated", modeSubmission, nil, "dr@demo.test", false, errAuthRequired},
		{"submission colleague", modeSubmission, &dr, "nurse@demo.test", false, errSenderNotOwned},
		{"submission lookalike", modeSubmission, &dr, "dr@demo.test.evil", false, errSenderNotOwned},
		{"submission null", modeSubmission, &dr, "", false, errNullSender},
		{"submission utf8 without SMTPUTF8", modeSubmission, &elise, "élise@demo.test", false, errNeedSMTPUTF8},
		{"submission utf8", modeSubmission, &elise, "élise@demo.test", true, nil},
		{"inbound any", modeInbound, nil, "someone@other.test", false, nil},
		{"inbound null", modeInbound, nil, "", false, nil},
		{"inbound utf8 without SMTPUTF8", modeInbound, nil, "josé@other.test", false, errNeedSMTPUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkReversePath(tc.mode, tc.acct, tc.from, tc.utf8)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestResolveRecipient(t *testing.T) {
	ctx := context.Background()
	trust := fakeTrust{domains: map[string]bool{"operator.mssante.test": true}}
	for _, tc := range []struct {
		name   string
		mode   mode
		addr   string
		utf8   bool
		want   storage.AccountID
		err    error
		relay  bool
		remote bool
	}{
		{"local", modeSubmission, "nurse@demo.test", false, 2, nil, true, false},
		{"local case", modeInbound, "NURSE@Demo.Test", false, 2, nil, true, false},
		{"local trailing dot", modeInbound, "nurse@demo.test.", false, 2, nil, true, false},
		{"unknown user", modeSubmission, "nobody@demo.test", false, 0, errUnknownUser, true, false},
		{"unknown user inbound", modeInbound, "nobody@demo.test", false, 0, errUnknownUser, true, false},
		{"remote submission, trust space, no relay", modeSubmission, "a@operator.mssante.test", false, 0, errRelayNotEnabled, false, false},
		{"remote submission, trust space", modeSubmission, "a@operator.mssante.test", false, 0, nil, true, true},
		{"remote submission, trust space, case", modeSubmission, "a@Operator.MSSante.test.", false, 0, nil, true, true},
		{"remote submission, outside, relay", modeSubmission, "a@other.test", false, 0, errOutsideTrustSpace, true, false},
		{"remote inbound, relay", modeInbound, "a@operator.mssante.test", false, 0, errRelayDenied, true, false},
		{"remote submission, outside", modeSubmission, "a@other.test", false, 0, errOutsideTrustSpace, true, false},
		{"remote submission, literal", modeSubmission, "a@[192.0.2.1]", false, 0, errOutsideTrustSpace, true, false},
		{"remote inbound", modeInbound, "a@other.test", false, 0, errRelayDenied, true, false},
		{"address literal", modeInbound, "a@[127.0.0.1]", false, 0, errRelayDenied, true, false},
		{"utf8 needs SMTPUTF8", modeInbound, "élise@demo.test", false, 0, errNeedSMTPUTF8, true, false},
		{"utf8", modeInbound, "élise@demo.test", true, 3, nil, true, false},
		{"postmaster", modeInbound, "Postmaster", false, 9, nil, true, false},
		{"no domain", modeInbound, "nurse", false, 0, errBadAddress, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acct, remote, err := resolveRecipient(ctx, fakeDB, trust, tc.relay, tc.mode, "demo.test", tc.addr, tc.utf8)
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, acct.ID)
			assert.Equal(t, tc.remote, remote)
		})
	}
	// A store failure is not a refusal: it must become a temporary error.
	broken := fakeAccounts{err: errors.New("database is locked")}
	_, _, err := resolveRecipient(ctx, broken, trust, true, modeInbound, "demo.test", "nurse@demo.test", false)
	require.Error(t, err)
	for _, r := range replies {
		assert.NotErrorIs(t, err, r.err)
	}
	// So is a trust list that cannot be read.
	_, _, err = resolveRecipient(ctx, fakeDB, fakeTrust{err: errors.New("disk I/O error")}, true, modeSubmission, "demo.test", "a@operator.mssante.test", false)
	require.Error(t, err)
	for _, r := range replies {
		assert.NotErrorIs(t, err, r.err)
	}
	// Without a trust list, no remote domain is in the trust space.
	_, _, err = resolveRecipient(ctx, fakeDB, nil, true, modeSubmission, "demo.test", "a@operator.mssante.test", false)
	assert.ErrorIs(t, err, errOutsideTrustSpace)
}

// fakeTrust is a trust list of lower-case domains (the policy table's only
// dependency besides accounts; the real one, directory.Trust over the store,
// is exercised in submission_test.go).
type fakeTrust struct {
	domains map[string]bool
	err     error
}

func (f fakeTrust) DomainTrusted(_ context.Context, domain string) (bool, error) {
	return f.domains[domain], f.err
}

func TestCheckFromHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string
		want   error
	}{
		{"plain", "From: dr@demo.test\r\n", nil},
		{"display name", "From: \"Dr. Test\" <dr@demo.test>\r\n", nil},
		{"encoded name", "From: =?iso-8859-1?q?Dr_=C9mile?= <DR@demo.test>\r\n", nil},
		{"folded", "From: Dr Test\r\n <dr@demo.test>\r\n", nil},
		{"lower-case field name", "from: dr@demo.test\r\n", nil},
		{"bare LF", "From: dr@demo.test\n", nil},
		{"colleague", "From: nurse@demo.test\r\n", errFromNotOwned},
		{"one of two", "From: dr@demo.test, nurse@demo.test\r\n", errFromNotOwned},
		{"group", "From: team: nurse@demo.test;\r\n", errFromNotOwned},
		{"two From fields", "From: dr@demo.test\r\nFrom: dr@demo.test\r\n", errNoFrom},
		{"missing", "Subject: x\r\n", errNoFrom},
		{"empty", "From: \r\n", errNoFrom},
		{"garbage", "From: <<<\r\n", errNoFrom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.header + "To: nurse@demo.test\r\nSubject: s\r\n\r\nbody\r\nFrom: nurse@demo.test\r\n"
			err := checkFromHeader(dr, []byte(msg))
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
	assert.NoError(t, checkFromHeader(elise, []byte("From: Élise <élise@demo.test>\r\n\r\nx")))
}

func TestDeliveries(t *testing.T) {
	got := deliveries(modeSubmission, &dr, []storage.AccountID{2, 3, 2, 1})
	assert.Equal(t, []storage.Recipient{
		{Account: 2, Mailbox: "INBOX"},
		{Account: 3, Mailbox: "INBOX"},
		{Account: 1, Mailbox: "INBOX"},
		{Account: 1, Mailbox: "Sent", SpecialUse: storage.SpecialUseSent, Flags: []string{storage.FlagSeen}},
	}, got)
	got = deliveries(modeInbound, nil, []storage.AccountID{2, 2})
	assert.Equal(t, []storage.Recipient{{Account: 2, Mailbox: "INBOX"}}, got)
}

func FuzzCheckFromHeader(f *testing.F) {
	for _, s := range []string{"From: dr@demo.test\r\n\r\n", "From: a@b, c@d\r\n\r\n", "From: =?utf-8?b?w4k=?= <dr@demo.test>\r\n\r\nx", "From: team: ;\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		err := checkFromHeader(dr, msg)
		if err != nil && !errors.Is(err, errNoFrom) && !errors.Is(err, errFromNotOwned) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
