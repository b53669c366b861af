//go:build !unix

package pki

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// lockFile takes a lock by creating path exclusively (O_EXCL), retrying
// while another writer holds it. A lock older than a minute is considered
// left behind by a crashed process and removed.
func lockFile(path string) (unlock func(), err error) {
	path += ".excl"
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("pki: locking %s: %w", path, err)
		}
		if st, err := os.Stat(path); err == nil && time.Since(st.ModTime()) > time.Minute {
			os.Remove(path)
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
}
