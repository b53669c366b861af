// Command crash is the crash-consistency check of issue 7: it runs relais
// serve on a fresh data directory, puts it under mixed load (submission
// with STARTTLS and AUTH, IMAP APPEND and STORE, chat over the
// WebSocket), kills it with SIGKILL after a random 2-8 s, restarts it on
// the same data and ports, and checks that:
//
//   - it starts cleanly: ready on every port within a bound, no
//     error-level log line before that;
//   - every acknowledgement journaled so far is still true: each message
//     the server answered 250 to is in each recipient's INBOX, each
//     APPEND answered OK is at its APPENDUID, each flag STORE answered OK
//     is set, each chat message the server acked is at its seq;
//   - UIDs never repeat or go back (RFC 9051 2.3.1.1), UIDVALIDITY stays,
//     and the chat room's seq stays gapless (chat/PROTOCOL.md 2.2).
//
// Acknowledgements are journaled (JSON lines, fsynced) only after the
// server's reply, so the journal never claims more than the server
// promised. It prints a summary and exits 1 on any loss.
//
//	go run ./bench/crash -relais bin/relais -rounds 20 [-database postgres://...]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

type options struct {
	relais                          string
	rounds                          int
	database                        string
	dir                             string
	keep                            bool
	minLoad, maxLoad, ready         time.Duration
	users                           int
	submitters, appenders, chatters int
	seed                            uint64
}

func main() {
	var o options
	flag.StringVar(&o.relais, "relais", "bin/relais", "the relais `binary` under test")
	flag.IntVar(&o.rounds, "rounds", 20, "kill/restart rounds")
	flag.StringVar(&o.database, "database", "", "PostgreSQL `URL` passed to relais serve --database (empty: SQLite in the data directory)")
	flag.StringVar(&o.dir, "dir", "", "work `DIR` (data, journal, server log); default a new temporary directory, removed on success")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory even on success")
	flag.DurationVar(&o.minLoad, "min", 2*time.Second, "shortest load before the kill")
	flag.DurationVar(&o.maxLoad, "max", 8*time.Second, "longest load before the kill")
	flag.DurationVar(&o.ready, "ready", 30*time.Second, "bound for a (re)start: every port answering")
	flag.IntVar(&o.users, "users", 6, "local accounts")
	flag.IntVar(&o.submitters, "submitters", 3, "SMTP submission clients")
	flag.IntVar(&o.appenders, "appenders", 2, "IMAP clients (APPEND, STORE)")
	flag.IntVar(&o.chatters, "chatters", 3, "chat clients (one user each)")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed (0: a random one, printed)")
	flag.Parse()
	log.SetFlags(0)
	if o.rounds < 1 || o.minLoad <= 0 || o.maxLoad < o.minLoad || o.users < 2 || o.chatters > o.users ||
		o.submitters < 1 || o.appenders < 1 || o.chatters < 1 {
		log.Fatal("crash: need rounds >= 1, 0 < min <= max, users >= 2, at least one client of each kind, chatters <= users")
	}
	if o.seed == 0 {
		o.seed = mrand.Uint64()
	}
	os.Exit(run(o))
}

// run returns the exit status: 0 when nothing was lost and every start
// was clean.
func run(o options) int {
	bin, err := filepath.Abs(o.relais)
	if err != nil {
		log.Fatalf("crash: %v", err)
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "relais-crash-"); err != nil {
			log.Fatalf("crash: %v", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatalf("crash: %v", err)
	}
	status := 1
	defer func() {
		if status == 0 && !o.keep && o.dir == "" {
			os.RemoveAll(dir)
		} else {
			fmt.Printf("work directory kept: %s (server.log, journal.jsonl, data/)\n", dir)
		}
	}()

	tag := randomHex(4)
	n := &node{bin: bin, dataDir: filepath.Join(dir, "data"), config: filepath.Join(dir, "relais.toml"),
		database: o.database, logPath: filepath.Join(dir, "server.log")}
	if n.addrs, err = freeListeners(); err != nil {
		log.Printf("crash: %v", err)
		return status
	}
	t := &target{addrs: n.addrs, domain: "crash" + tag + ".relais.test", run: tag}
	store := "SQLite"
	if o.database != "" {
		store = "PostgreSQL"
	}
	fmt.Printf("== crash consistency: %d rounds, kill -9 after %v-%v of mixed load, %s store, seed %d\n",
		o.rounds, o.minLoad, o.maxLoad, store, o.seed)

	users, err := setup(n, t, o.users)
	if err != nil {
		log.Printf("crash: setup: %v", err)
		return status
	}
	ready, err := n.start(o.ready, t.tls, "first start")
	if err != nil {
		log.Printf("crash: first start: %v", err)
		return status
	}
	defer n.kill()
	if errs := n.startErrors(); len(errs) > 0 {
		log.Printf("crash: first start logged errors:\n  %s", errs[0])
		return status
	}
	fmt.Printf("first start: ready in %v on %s (submission), %s (IMAP), %s (HTTPS)\n",
		ready.Round(time.Millisecond), n.addrs.submission, n.addrs.imap, n.addrs.http)

	ctx := context.Background()
	owner := newWebClient(t)
	if err := owner.login(ctx, users[0]); err != nil {
		log.Printf("crash: %v", err)
		return status
	}
	var members []string
	for _, u := range users[1:] {
		members = append(members, u.addr)
	}
	if t.room, err = owner.createRoom(ctx, "crash "+tag, members); err != nil {
		log.Printf("crash: %v", err)
		return status
	}

	j, err := openJournal(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		log.Printf("crash: %v", err)
		return status
	}
	defer j.close()

	ck := &checker{t: t, users: users, chatAs: users[0], mailboxes: map[string]*mailboxState{}}
	submitters := make([]*submitter, o.submitters)
	for i := range submitters {
		submitters[i] = &submitter{id: i + 1, from: users[i%len(users)], users: users}
	}
	appenders := make([]*appender, o.appenders)
	for i := range appenders {
		appenders[i] = &appender{id: i + 1, user: users[len(users)-1-i%len(users)]}
	}
	chatters := make([]*chatter, o.chatters)
	for i := range chatters {
		chatters[i] = &chatter{id: i + 1, user: users[i]}
	}

	rng := mrand.New(mrand.NewPCG(o.seed, 0))
	var (
		readies               []time.Duration
		unclean, clientErrors int
		serverErrors          int
		violations, maxLost   int // violations are per round; a loss stays in the journal
		last                  verdict
	)
	for round := 1; round <= o.rounds; round++ {
		load := o.minLoad + time.Duration(rng.Int64N(int64(o.maxLoad-o.minLoad)+1))
		c := loadRound(t, j, round, load, o.seed, submitters, appenders, chatters, n)
		runErrs := n.runErrors() // logged while it ran, before the kill
		serverErrors += len(runErrs)
		clientErrors += len(c.errors)

		ready, err := n.start(o.ready, t.tls, fmt.Sprintf("restart after kill %d", round))
		if err != nil {
			unclean++
			fmt.Printf("round %d: UNCLEAN START: %v\n", round, err)
			break
		}
		readies = append(readies, ready)
		startErrs := n.startErrors()
		if len(startErrs) > 0 {
			unclean++
		}
		recs, err := readJournal(j.path)
		if err != nil {
			log.Printf("crash: %v", err)
			return status
		}
		verifyStart := time.Now()
		vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		var snap snapshot
		last, snap = ck.verify(vctx, recs)
		cancel()
		if err := ck.checkCanaries(snap); err != nil {
			last.violations++
			last.problem("%v", err)
		}
		verifyTime := time.Since(verifyStart)
		violations += last.violations
		maxLost = max(maxLost, last.lost())

		fmt.Printf("round %2d: %4.1fs load: acked %3d messages, %3d appends, %3d flags, %3d chat (%d retried); kill -9; ready in %5v; journal %5d records checked in %v: lost %d, violations %d\n",
			round, load.Seconds(), c.submits.Load(), c.appends.Load(), c.flags.Load(), c.chats.Load(), c.retries.Load(),
			ready.Round(time.Millisecond), len(recs), verifyTime.Round(100*time.Millisecond), last.lost(), last.violations)
		for _, l := range startErrs {
			fmt.Printf("  error logged at startup: %s\n", l)
		}
		for _, l := range runErrs[:min(3, len(runErrs))] {
			fmt.Printf("  server error line before the kill: %s\n", l)
		}
		for _, e := range c.errors[:min(3, len(c.errors))] {
			fmt.Printf("  client error while the server was up: %s\n", e)
		}
		for _, p := range last.problems[:min(10, len(last.problems))] {
			fmt.Printf("  %s\n", p)
		}
		if len(last.problems) > 10 {
			fmt.Printf("  ... %d more\n", len(last.problems)-10)
		}
	}
	stopErr := n.stop(40 * time.Second)

	slices.Sort(readies)
	fmt.Printf("== summary: %d rounds\n", len(readies))
	fmt.Printf("acknowledged: %d SMTP messages (%d deliveries), %d IMAP APPENDs, %d flag STOREs, %d chat messages\n",
		last.submits, last.deliveries, last.appends, last.flags, last.chats)
	fmt.Printf("lost: %d (deliveries %d, appends %d, flags %d, chat messages %d; most in any round %d); UID/seq violations: %d; unclean starts: %d\n",
		last.lost(), last.lostDeliveries, last.lostAppends, last.lostFlags, last.lostChats, maxLost, violations, unclean)
	if len(readies) > 0 {
		fmt.Printf("restart to ready: median %v, max %v\n",
			readies[len(readies)/2].Round(time.Millisecond), readies[len(readies)-1].Round(time.Millisecond))
	}
	fmt.Printf("client errors while the server was up: %d; server error lines during load: %d\n", clientErrors, serverErrors)
	if stopErr != nil {
		fmt.Printf("final stop: %v\n", stopErr)
	}

	switch {
	case maxLost > 0 || violations > 0 || unclean > 0 || len(readies) < o.rounds:
		fmt.Println("FAIL")
	case last.submits == 0 || last.appends == 0 || last.flags == 0 || last.chats == 0:
		fmt.Println("FAIL: a kind of load got no acknowledgement at all; nothing was checked for it")
	case stopErr != nil:
		fmt.Println("FAIL: no clean stop")
	default:
		fmt.Println("PASS")
		status = 0
	}
	return status
}

// loadRound starts every client, lets them run for load once all have
// their session (a login costs an argon2id hash: connecting is not the
// load being measured), then kills the server (SIGKILL) and waits for the
// clients to give up.
func loadRound(t *target, j *journal, round int, load time.Duration, seed uint64,
	submitters []*submitter, appenders []*appender, chatters []*chatter, n *node) *counters {
	c := &counters{}
	ctx, cancel := context.WithCancel(context.Background())
	t.killed.Store(false)
	var wg, connected sync.WaitGroup
	var readies []func()
	// once returns a callback that counts a client as connected the
	// first time it is called.
	once := func() func() {
		connected.Add(1)
		f := sync.OnceFunc(connected.Done)
		readies = append(readies, f)
		return f
	}
	stream := uint64(round) << 16
	for _, s := range submitters {
		rng := mrand.New(mrand.NewPCG(seed, stream|uint64(s.id)))
		ready := once()
		wg.Go(func() { s.run(ctx, t, j, c, round, rng, ready) })
	}
	for _, a := range appenders {
		rng := mrand.New(mrand.NewPCG(seed, stream|0x100|uint64(a.id)))
		ready := once()
		wg.Go(func() { a.run(ctx, t, j, c, round, rng, ready) })
	}
	for _, ch := range chatters {
		ready := once()
		wg.Go(func() { ch.run(ctx, t, j, c, round, ready) })
	}
	all := make(chan struct{})
	go func() { connected.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(connectBound):
		c.fail(t, "load", fmt.Errorf("not every client connected within %v", connectBound))
	}
	time.Sleep(load)
	t.killed.Store(true)
	n.kill()
	cancel()
	wg.Wait()
	for _, f := range readies {
		f() // a client that never connected releases the waiter
	}
	return c
}

// connectBound is how long the clients get to log in before the load
// timer starts anyway.
const connectBound = 30 * time.Second

// setup creates the installation the way an administrator would: the
// certificate authority, the domain, the users with known passwords, and
// for each user an S/MIME certificate (submission signs as the sender),
// published in the directory.
func setup(n *node, t *target, count int) ([]user, error) {
	if err := n.writeConfig(); err != nil {
		return nil, err
	}
	if _, err := n.admin("", "pki", "init", "--config", n.config); err != nil {
		return nil, err
	}
	var err error
	if t.tls, err = n.clientTLS(); err != nil {
		return nil, err
	}
	if _, err := n.admin("", "admin", "domain", "add", t.domain); err != nil {
		return nil, err
	}
	users := make([]user, count)
	for i := range users {
		u := user{addr: fmt.Sprintf("user%d@%s", i+1, t.domain), pass: randomHex(12)}
		if _, err := n.admin(u.pass+"\n", "admin", "user", "add", u.addr, "--name", fmt.Sprintf("Crash User %d", i+1), "--password-stdin"); err != nil {
			return nil, err
		}
		if _, err := n.admin("", "pki", "issue", "--kind", "organisation", "--email", u.addr,
			"--cn", fmt.Sprintf("Crash mailbox %d", i+1), "--publish"); err != nil {
			return nil, err
		}
		users[i] = u
	}
	return users, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
