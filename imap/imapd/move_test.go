package imapd_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestTwoSessionsMoveAndCopy(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 4; i++ {
		e.deliver("INBOX", testMessage(i, fmt.Sprint("m", i), "x"))
	}
	w := newWatcher()
	c1 := e.dial(nil)
	c2 := e.dial(w.handler())
	e.selectBox(c1, "INBOX")
	e.selectBox(c2, "INBOX")

	md, err := c1.Move(imap.SeqSetNum(1, 3), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.UIDValidity == 0 || md.SourceUIDs.String() != "1,3" {
		t.Errorf("COPYUID %+v", md)
	}
	if got, want := subjects(t, c1), []string{"1:m2", "2:m4"}; !slices.Equal(got, want) {
		t.Fatalf("first session after MOVE: %v, want %v", got, want)
	}
	if err := c2.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, ex := w.state(); !slices.Equal(ex, []uint32{1, 2}) {
		t.Fatalf("second session EXPUNGEs %v, want [1 2]", ex)
	}
	if got, want := subjects(t, c2), []string{"1:m2", "2:m4"}; !slices.Equal(got, want) {
		t.Fatalf("second session after MOVE: %v, want %v", got, want)
	}
	e.selectBox(c2, "Archive")
	if got, want := subjects(t, c2), []string{"1:m1", "2:m3"}; !slices.Equal(got, want) {
		t.Fatalf("Archive: %v, want %v", got, want)
	}

	cd, err := c1.Copy(imap.SeqSetNum(2), "Trash").Wait()
	if err != nil || len(cd.DestUIDs) != 1 {
		t.Fatalf("COPY: %+v %v", cd, err)
	}
	if _, err := c1.Move(imap.SeqSetNum(1), "Nowhere").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Fatalf("MOVE to missing mailbox: %v, want NO [TRYCREATE]", err)
	}
}
