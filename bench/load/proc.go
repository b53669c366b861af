package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runMem prints the resident memory of a process and all its descendants
// (Dovecot is a master and one or two processes per connection; Relais is
// one process): the sum of RSS, which counts shared pages once per
// process, and of PSS, which shares them out.
func runMem(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: load mem PID")
	}
	root, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("pid %q: %w", args[0], err)
	}
	pids, err := descendants(root)
	if err != nil {
		return err
	}
	var rss, pss int64
	for _, pid := range pids {
		r, p, err := memOf(pid)
		if err != nil {
			continue // exited meanwhile
		}
		rss += r
		pss += p
	}
	fmt.Printf("RESULT mem procs=%d rss_kib=%d pss_kib=%d\n", len(pids), rss, pss)
	return nil
}

// descendants returns root and every process below it, from /proc.
func descendants(root int) ([]int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// proc(5): pid (comm) state ppid ...; comm may hold spaces.
		s := string(b)
		rp := strings.LastIndexByte(s, ')')
		if rp < 0 {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		pid, err1 := strconv.Atoi(strings.Fields(s)[0])
		if len(fields) < 2 || err1 != nil {
			continue
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", root)); err != nil {
		return nil, fmt.Errorf("process %d: %w", root, err)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// memOf reads Rss and Pss (KiB) from /proc/PID/smaps_rollup.
func memOf(pid int) (rss, pss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss, sc.Err()
}

// runPorts prints n distinct free loopback TCP ports, one per line.
func runPorts(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: load ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n <= 0 {
		return fmt.Errorf("count %q: not a positive number", args[0])
	}
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// runWait returns once every address accepts a TCP connection.
func runWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	timeout := fs.Duration("timeout", 60*time.Second, "give up after")
	fs.Parse(args)
	deadline := time.Now().Add(*timeout)
	for _, addr := range fs.Args() {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %w", addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
