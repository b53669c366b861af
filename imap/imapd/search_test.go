package imapd_test

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/storage"
)

func TestSearch(t *testing.T) {
	e := newEnv(t)
	e.deliver("INBOX", testMessage(1, "Compte rendu de Élodie", "Patiente suivie en cardiologie."))
	e.deliver("INBOX", testMessage(2, "=?utf-8?q?R=C3=A9union_=C3=A9quipe?=", "Ordre du jour: coordination."))
	e.deliver("INBOX", "From: =?utf-8?q?H=C3=B4pital?= <dpi@hopital.test>\r\nTo: alice@example.test\r\nSubject: Lettre de sortie\r\nX-Dossier: ABC-42\r\nDate: Sun, 01 Mar 2026 10:00:00 +0100\r\n\r\nRetour à domicile prévu; Élodie prévenue.\r\n")
	c := e.dial(nil)
	e.selectBox(c, "INBOX")
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		criteria imap.SearchCriteria
		want     []uint32
	}{
		{"all", imap.SearchCriteria{}, []uint32{1, 2, 3}},
		{"subject accents folded", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "elodie"}}}, []uint32{1}},
		{"encoded subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "REUNION"}}}, []uint32{2}},
		{"from display name", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "hopital"}}}, []uint32{3}},
		{"arbitrary header", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Dossier", Value: "abc-42"}}}, []uint32{3}},
		{"header present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Dossier", Value: ""}}}, []uint32{3}},
		{"body", imap.SearchCriteria{Body: []string{"CARDIOLOGIE"}}, []uint32{1}},
		{"text in body with accents", imap.SearchCriteria{Text: []string{"elodie"}}, []uint32{1, 3}},
		{"text in header", imap.SearchCriteria{Text: []string{"lettre de sortie"}}, []uint32{3}},
		{"flag", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []uint32{2}},
		{"not flag", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagFlagged}}, []uint32{1, 3}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"coordination"}}}}, []uint32{1, 3}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"cardiologie"}}, {Flag: []imap.Flag{imap.FlagFlagged}}}}}, []uint32{1, 2}},
		{"seq set", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2, 3)}}, []uint32{2, 3}},
		{"uid star", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 0, Stop: 0}}}}, []uint32{3}},
		{"larger", imap.SearchCriteria{Larger: 10}, []uint32{1, 2, 3}},
		{"smaller", imap.SearchCriteria{Smaller: 10}, nil},
		{"sent before", imap.SearchCriteria{SentBefore: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}, []uint32{3}},
		{"since today", imap.SearchCriteria{Since: time.Now().Add(-48 * time.Hour)}, []uint32{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.Search(&tt.criteria, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if got := d.AllSeqNums(); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// ESEARCH (RFC 4731) and UID SEARCH.
	d, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{"élodie"}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if d.Min != 1 || d.Max != 3 || d.Count != 2 {
		t.Errorf("ESEARCH %+v", d)
	}
}

// counting passes every call to the real store and records how SELECT and
// SEARCH read message lists.
type counting struct {
	imapd.Store
	mu       sync.Mutex
	messages int        // calls to Messages (summaries of a whole mailbox)
	index    int        // calls to MessageIndex
	byUID    [][]uint32 // the UIDs of each MessagesByUID call
}

func (c *counting) Messages(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error) {
	c.mu.Lock()
	c.messages++
	c.mu.Unlock()
	return c.Store.Messages(ctx, acct, mbox)
}

func (c *counting) MessageIndex(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID) ([]storage.MessageInfo, error) {
	c.mu.Lock()
	c.index++
	c.mu.Unlock()
	return c.Store.MessageIndex(ctx, acct, mbox)
}

func (c *counting) MessagesByUID(ctx context.Context, acct storage.AccountID, mbox storage.MailboxID, uids []uint32) ([]storage.MessageInfo, error) {
	c.mu.Lock()
	c.byUID = append(c.byUID, slices.Clone(uids))
	c.mu.Unlock()
	return c.Store.MessagesByUID(ctx, acct, mbox, uids)
}

// take returns the counts since the last call and resets them.
func (c *counting) take() (messages, index int, byUID [][]uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	messages, index, byUID = c.messages, c.index, c.byUID
	c.messages, c.index, c.byUID = 0, 0, nil
	return messages, index, byUID
}

// TestSearchReadsSummariesInBulk checks that SELECT and SEARCH list the
// mailbox without summaries, that SEARCH reads the summaries it needs in
// one call and only for the messages the other criteria left undecided, and
// that results mixing both passes come out in order.
func TestSearchReadsSummariesInBulk(t *testing.T) {
	e := newEnv(t)
	for i, subject := range []string{"Note un", "Compte rendu", "Note trois", "Divers", "Compte rendu bis"} {
		e.deliver("INBOX", testMessage(i+1, subject, "Corps."))
	}
	st := &counting{Store: e.store}
	srv, c := e.serveOwn(t, imapd.Config{}, st)
	if m, idx, by := st.take(); m != 0 || idx != 1 || len(by) != 0 {
		t.Fatalf("SELECT: %d Messages, %d MessageIndex, MessagesByUID %v; want 0, 1, none", m, idx, by)
	}
	seen := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
	if err := c.Store(imap.SeqSetNum(1, 3), seen, nil).Close(); err != nil {
		t.Fatal(err)
	}
	st.take()

	subject := func(v string) imap.SearchCriteria {
		return imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: v}}}
	}
	tests := []struct {
		name     string
		criteria imap.SearchCriteria
		want     []imap.UID
		full     bool       // every summary is needed: read through Messages
		loaded   [][]uint32 // the MessagesByUID calls expected
	}{
		{"flags only", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []imap.UID{2, 4, 5}, false, nil},
		{"subject", subject("compte"), []imap.UID{2, 5}, true, nil},
		{"sent before", imap.SearchCriteria{SentBefore: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}, []imap.UID{1, 2, 3, 4, 5}, true, nil},
		{"message-id then raw header", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{
			{Key: "Message-ID", Value: "m2@"}, {Key: "X-Absent", Value: ""},
		}}, nil, true, nil},
		{"unseen and subject", imap.SearchCriteria{
			NotFlag: []imap.Flag{imap.FlagSeen},
			Header:  subject("compte").Header,
		}, []imap.UID{2, 5}, false, [][]uint32{{2, 4, 5}}},
		{"seen or subject", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
			{Flag: []imap.Flag{imap.FlagSeen}}, subject("rendu bis"),
		}}}, []imap.UID{1, 3, 5}, false, [][]uint32{{2, 4, 5}}},
		{"header then subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{
			{Key: "X-Absent", Value: ""}, {Key: "Subject", Value: "compte"},
		}}, nil, false, nil},
		{"no candidate left", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(9)}, Header: subject("note").Header}, nil, false, nil},
	}
	for _, tt := range tests {
		d, err := c.UIDSearch(&tt.criteria, nil).Wait()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := d.AllUIDs(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
		m, idx, by := st.take()
		if wantM := boolInt(tt.full); m != wantM || idx != 1-wantM {
			t.Errorf("%s: %d Messages, %d MessageIndex; want %d, %d", tt.name, m, idx, wantM, 1-wantM)
		}
		if !reflect.DeepEqual(by, tt.loaded) {
			t.Errorf("%s: MessagesByUID calls %v, want %v", tt.name, by, tt.loaded)
		}
	}
	if n := srv.Panics(); n != 0 {
		t.Errorf("%d panics recovered", n)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
