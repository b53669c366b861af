package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestProgressBarLine(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	p := &progressBar{start: start, now: func() time.Time { return start.Add(10 * time.Second) }, width: 10}
	// 40 MB of 100 in 10 s: 4 MB/s, 15 s to go.
	assert.Equal(t, "[====>     ]  40%  812,034 rows  4.0 MB/s  ETA 15s   ", p.line(40e6, 100e6, 812034))
	assert.Equal(t, "[==========] 100%  2,000,000 rows  10.0 MB/s   ", p.line(100e6, 100e6, 2000000))
	// Unknown size (a pipe): no bar, no ETA.
	assert.Equal(t, "  12 rows  0.0 MB/s   ", p.line(120, 0, 12))
}

func TestProgressBarStaysQuietOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressBar(&buf)
	p.update(1, 2, 3, "")
	p.finish()
	assert.Empty(t, buf.String(), "a pipe or a log file gets no carriage-return noise")
}

func TestGroupThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		assert.Equal(t, want, groupThousands(n))
	}
}

func TestValidBaseDN(t *testing.T) {
	for dn, ok := range map[string]bool{
		"o=relais": true, "dc=demo,dc=mssante,dc=test": true, "ou=annuaire, o=CHU": true,
		"": false, "relais": false, "o=": false, "o=a+b": false, `o=a\,b`: false, "o=a,": false,
	} {
		assert.Equal(t, ok, validBaseDN(dn), dn)
	}
}
