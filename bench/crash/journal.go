package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// Record kinds of the journal.
const (
	kindSubmit = "submit" // SMTP DATA answered 250: Message-ID delivered to each of To
	kindAppend = "append" // IMAP APPEND answered OK: Message-ID at UID in Mailbox of User
	kindFlag   = "flag"   // IMAP UID STORE +FLAGS answered OK: Flag set on UID
	kindChat   = "chat"   // chat send acked: Body at Seq in Room, posted by User
)

// record is one acknowledgement the server gave. Only what the server
// confirmed goes in: a record is written after the reply, never before.
type record struct {
	Kind        string   `json:"k"`
	Round       int      `json:"round"`
	User        string   `json:"user,omitempty"`
	To          []string `json:"to,omitempty"`
	MessageID   string   `json:"mid,omitempty"`
	Mailbox     string   `json:"mbox,omitempty"`
	UID         uint32   `json:"uid,omitempty"`
	UIDValidity uint32   `json:"uv,omitempty"`
	Flag        string   `json:"flag,omitempty"`
	Room        int64    `json:"room,omitempty"`
	Seq         int64    `json:"seq,omitempty"`
	ClientID    string   `json:"cid,omitempty"`
	Body        string   `json:"body,omitempty"`
}

// journal appends records to a file, one JSON object a line, and fsyncs
// each one before returning: what it says survives our own crash too.
type journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	return &journal{f: f, path: path}, nil
}

// add writes r and syncs it to disk.
func (j *journal) add(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: encode: %w", err)
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("journal: write: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: fsync: %w", err)
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// readJournal reads every record back from disk: the verification trusts
// the file, not the load generator's memory.
func readJournal(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("journal: line %d: %w", n, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal: read: %w", err)
	}
	return recs, nil
}
