// Package storagetest is the conformance suite every storage.Store
// implementation runs (storage/sqlite, later storage/postgres). It checks
// the contract documented in package storage: RFC 9051 mailbox rules,
// persistent UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ (RFC 9051 2.3.1.1, RFC 7162),
// flags, COPY/MOVE (RFC 4315, RFC 6851), the change feed, atomic delivery,
// concurrency and isolation between accounts.
package storagetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// Open opens the store kept in dir; calling it again on the same dir (after
// Close) must reopen the same data.
type Open func(t *testing.T, dir string) storage.Store

// Run runs the whole suite. Subtests run in parallel, each on its own
// directory. The feed overflow test assumes the store's backlog is at most
// storage.DefaultBacklog.
func Run(t *testing.T, open func(t *testing.T, dir string) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Domains", testDomains},
		{"Accounts", testAccounts},
		{"DefaultMailboxes", testDefaultMailboxes},
		{"CreateMailbox", testCreateMailbox},
		{"DeleteMailbox", testDeleteMailbox},
		{"RenameMailbox", testRenameMailbox},
		{"RenameNonASCII", testRenameNonASCII},
		{"RenameInbox", testRenameInbox},
		{"Subscriptions", testSubscriptions},
		{"Append", testAppend},
		{"DeliverAtomic", testDeliverAtomic},
		{"DeliverSpecialUse", testDeliverSpecialUse},
		{"MessagesOrder", testMessagesOrder},
		{"MessageIndex", testMessageIndex},
		{"RawMessage", testRawMessage},
		{"Flags", testFlags},
		{"CondStore", testCondStore},
		{"Expunge", testExpunge},
		{"Copy", testCopy},
		{"Move", testMove},
		{"Counts", testCounts},
		{"SearchText", testSearchText},
		{"Feed", testFeed},
		{"FeedOverflow", testFeedOverflow},
		{"Concurrency", testConcurrency},
		{"Isolation", testIsolation},
		{"Persistence", testPersistence},
		{"DirectoryApply", testDirectoryApply},
		{"DirectoryOwnership", testDirectoryOwnership},
		{"DirectoryValidation", testDirectoryValidation},
		{"DirectorySearchName", testDirectorySearchName},
		{"DirectorySearchRanking", testDirectorySearchRanking},
		{"DirectorySearchFilters", testDirectorySearchFilters},
		{"DirectorySearchPaging", testDirectorySearchPaging},
		{"DirectoryLocalAccounts", testDirectoryLocalAccounts},
		{"DirectoryCertificates", testDirectoryCertificates},
		{"DirectoryTrust", testDirectoryTrust},
		{"SubmitAtomic", testSubmitAtomic},
		{"SubmitLocal", testSubmitLocal},
		{"QueueEnqueueValidation", testEnqueueValidation},
		{"QueueLease", testQueueLease},
		{"QueueLeaseConcurrent", testQueueLeaseConcurrent},
		{"QueueRecordAttempt", testRecordAttempt},
		{"QueueRetryDrop", testRetryDropQueue},
		{"QueueEntries", testQueueEntries},
		{"QueuePersistence", testQueuePersistence},
		{"QueueLargeRaw", testQueueLargeRaw},
		{"StatusOrder", testDeliveryStatusOrder},
		{"StatusIsolation", testDeliveryStatusIsolation},
		{"DocumentsAdd", testDocumentsAdd},
		{"DocumentsIsolation", testDocumentsIsolation},
		{"DocumentsByPatient", testDocumentsByPatient},
		{"DocumentsAPITokens", testAPITokens},
		{"DocumentsSent", testSentDocuments},
		{"DocumentsPersistence", testDocumentsPersistence},
		// The chat and the audit log (chat.go).
		{"ChatRooms", testChatRooms},
		{"ChatSeqConcurrent", testChatSeqConcurrent},
		{"ChatIdempotent", testChatIdempotent},
		{"ChatMemberOnly", testChatMemberOnly},
		{"ChatRemoval", testChatRemoval},
		{"ChatEditDelete", testChatEditDelete},
		{"ChatReadMarkers", testChatReadMarkers},
		{"ChatUnread", testChatUnread},
		{"ChatRoomsByINS", testChatRoomsByINS},
		{"ChatNotifications", testChatNotifications},
		{"ChatSearch", testChatSearch},
		{"ChatDirect", testChatDirect},
		{"ChatLimits", testChatLimits},
		{"ChatAudit", testChatAudit},
		{"ChatPersistence", testChatPersistence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t, open))
		})
	}
}

// env is one test's store with two accounts on example.org.
type env struct {
	open  Open
	dir   string
	s     storage.Store
	ctx   context.Context
	alice storage.Account
	bob   storage.Account
}

func newEnv(t *testing.T, open Open) *env {
	t.Helper()
	e := &env{open: open, dir: t.TempDir(), ctx: context.Background()}
	e.s = open(t, e.dir)
	t.Cleanup(func() {
		if e.s != nil {
			require.NoError(t, e.s.Close())
		}
	})
	_, err := e.s.AddDomain(e.ctx, "example.org")
	require.NoError(t, err)
	e.alice, err = e.s.CreateAccount(e.ctx, "alice@example.org", "Alice", "hash-a")
	require.NoError(t, err)
	e.bob, err = e.s.CreateAccount(e.ctx, "bob@example.org", "Bob", "hash-b")
	require.NoError(t, err)
	return e
}

// reopen closes the store and opens the same directory again.
func (e *env) reopen(t *testing.T) {
	t.Helper()
	require.NoError(t, e.s.Close())
	e.s = nil
	e.s = e.open(t, e.dir)
}

func (e *env) mailbox(t *testing.T, acct storage.AccountID, name string) storage.Mailbox {
	t.Helper()
	m, err := e.s.MailboxByName(e.ctx, acct, name)
	require.NoError(t, err)
	return m
}

func (e *env) append(t *testing.T, acct storage.AccountID, mailbox string, raw []byte, flags ...string) storage.Delivered {
	t.Helper()
	d, err := e.s.Append(e.ctx, acct, mailbox, storage.NewMessage{Raw: raw, Flags: flags})
	require.NoError(t, err)
	return d
}

func (e *env) uids(t *testing.T, acct storage.AccountID, mbox storage.MailboxID) []uint32 {
	t.Helper()
	ms, err := e.s.Messages(e.ctx, acct, mbox)
	require.NoError(t, err)
	out := []uint32{}
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

func (e *env) message(t *testing.T, acct storage.AccountID, mbox storage.MailboxID, uid uint32) storage.MessageInfo {
	t.Helper()
	ms, err := e.s.MessagesByUID(e.ctx, acct, mbox, []uint32{uid})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	return ms[0]
}

// drain takes what a subscription has pending, failing on overflow.
func drain(t *testing.T, sub *storage.Subscription) []storage.Change {
	t.Helper()
	ch, overflowed := sub.Next()
	require.False(t, overflowed)
	return ch
}
