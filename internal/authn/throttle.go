package authn

import (
	"sync"
	"time"
)

// Throttle counts failed logins per key (an account, a client IP) and says
// how long the next attempt for that key must wait: nothing for the first
// Free failures, then a delay doubling from Base up to Max. Failures are
// forgotten after Window without one. A success resets the account's count.
type Throttle struct {
	Free   int
	Base   time.Duration
	Max    time.Duration
	Window time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures int
	last     time.Time
	until    time.Time
}

// NewThrottle returns the default policy: 3 free failures, then 1 s doubling
// to 5 min, forgotten after 15 min.
func NewThrottle() *Throttle {
	return &Throttle{Free: 3, Base: time.Second, Max: 5 * time.Minute, Window: 15 * time.Minute, Now: time.Now}
}

// Wait returns how long attempts for key are still refused (0: allowed).
func (t *Throttle) Wait(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil {
		return 0
	}
	now := t.Now()
	if now.Sub(e.last) > t.Window {
		delete(t.entries, key)
		return 0
	}
	if d := e.until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Fail records a failed attempt for key.
func (t *Throttle) Fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = make(map[string]*throttleEntry)
	}
	now := t.Now()
	e := t.entries[key]
	if e == nil || now.Sub(e.last) > t.Window {
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.failures++
	e.last = now
	if over := e.failures - t.Free; over > 0 {
		d := t.Base << min(over-1, 30)
		if d > t.Max || d <= 0 {
			d = t.Max
		}
		e.until = now.Add(d)
	}
	// Keep the map bounded: drop stale entries once it grows.
	if len(t.entries) > 100000 {
		for k, v := range t.entries {
			if now.Sub(v.last) > t.Window {
				delete(t.entries, k)
			}
		}
	}
}

// Reset forgets key's failures.
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}
