package imapd_test

import (
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
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
