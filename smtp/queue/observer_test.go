package queue_test

import (
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

// attempts records what the worker tells its Observer.
type attempts struct {
	mu   sync.Mutex
	done [][3]int // relayed, failed, deferred
	took []time.Duration
}

func (a *attempts) AttemptDone(elapsed time.Duration, relayed, failed, deferred int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done = append(a.done, [3]int{relayed, failed, deferred})
	a.took = append(a.took, elapsed)
}

func (a *attempts) snapshot() ([][3]int, []time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][3]int(nil), a.done...), append([]time.Duration(nil), a.took...)
}

// TestObserverSeesEachAttempt: one attempt of an entry with a recipient
// the remote operator accepts and one it refuses for good is reported
// once, after it is recorded, with its outcomes and its duration.
func TestObserverSeesEachAttempt(t *testing.T) {
	r := startRemote(t, remoteOptions{})
	const refused = "inconnu@remote.test"
	r.rcptReply[refused] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	e := newEnv(t, r.addr)
	obs := &attempts{}
	e.cfg.Observer = obs
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}, storage.OutboundRecipient{Address: refused}))
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	waitFor(t, "the observer", func() bool { d, _ := obs.snapshot(); return len(d) > 0 })

	done, took := obs.snapshot()
	require.Len(t, done, 1, "one attempt")
	assert.Equal(t, [3]int{1, 1, 0}, done[0], "relayed, failed, deferred")
	assert.Positive(t, took[0])
}
