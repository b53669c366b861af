package main

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestMessageIsSizedRFC5322(t *testing.T) {
	for _, size := range []int{1024, 10 << 10} {
		m := message(42, "a@b.test", "c@b.test", size)
		if len(m) < size || len(m) > size+80 {
			t.Errorf("size %d: got %d bytes", size, len(m))
		}
		if !bytes.Contains(m, []byte("Subject: bench message 42 token042\r\n")) {
			t.Errorf("size %d: no subject token in %q", size, m[:200])
		}
		for i, line := range bytes.Split(m, []byte("\r\n")) {
			if len(line) > 78 || bytes.ContainsAny(line, "\r\n") {
				t.Fatalf("size %d: line %d is %d bytes or holds a bare CR/LF", size, i, len(line))
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentile sorted its argument in place")
	}
}

// A child process is counted in its parent's tree, with its memory.
func TestDescendantsAndMemory(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	pids, err := descendants(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pids {
		found = found || p == child.Process.Pid
	}
	if pids[0] != os.Getpid() || !found {
		t.Fatalf("descendants(%d) = %v, want it first and child %d in it", os.Getpid(), pids, child.Process.Pid)
	}
	rss, pss, err := memOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || pss <= 0 || pss > rss {
		t.Errorf("rss %d KiB, pss %d KiB", rss, pss)
	}
	if _, err := descendants(1 << 30); err == nil {
		t.Error("no error for a missing process")
	}
}

func TestList(t *testing.T) {
	got := list(" a@x, ,b@x,")
	if len(got) != 2 || got[0] != "a@x" || got[1] != "b@x" {
		t.Errorf("list = %q", got)
	}
}
