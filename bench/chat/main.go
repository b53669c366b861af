// Command chat is the chat load benchmark of issue 6 (not part of the test
// suite): C WebSocket connections on loopback in R rooms (C/R members
// each), fan-out latency p50/p99 from commit to delivery at every member,
// and the server's memory per connection.
//
// It runs two processes so that each side has its own file descriptors
// and its own memory figures: the server (a real SQLite store in a
// temporary directory and the chat server on 127.0.0.1) and the clients
// (coder/websocket), started by the server as a child.
//
//	go run ./bench/chat -conns 10000 -rooms 1000 -rate 500 -duration 20s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/relais-mssante/relais/chat"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

func main() {
	mode := flag.String("mode", "server", "server (starts the clients itself) or client")
	conns := flag.Int("conns", 10000, "WebSocket connections (one account each)")
	rooms := flag.Int("rooms", 1000, "rooms; members per room = conns/rooms")
	rate := flag.Int("rate", 500, "messages per second, all rooms together")
	duration := flag.Duration("duration", 20*time.Second, "sending phase")
	url := flag.String("url", "", "client mode: the server's ws:// URL")
	flag.Parse()
	log.SetFlags(0)
	switch *mode {
	case "server":
		server(*conns, *rooms, *rate, *duration)
	case "client":
		client(*url, *conns, *rooms, *rate, *duration)
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
}

// benchSessions: the cookie relais_session=u<index> is account index.
type benchSessions struct{ accts []storage.Account }

func (b benchSessions) Account(r *http.Request) (storage.Account, bool) {
	c, err := r.Cookie("relais_session")
	if err != nil || !strings.HasPrefix(c.Value, "u") {
		return storage.Account{}, false
	}
	i, err := strconv.Atoi(c.Value[1:])
	if err != nil || i < 0 || i >= len(b.accts) {
		return storage.Account{}, false
	}
	return b.accts[i], true
}

func memInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func server(conns, rooms, rate int, duration time.Duration) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "relais-chat-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(filepath.Join(dir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler), Backlog: 100000})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddDomain(ctx, "bench.relais.test"); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	accts := make([]storage.Account, conns)
	parallel(conns, 64, func(i int) {
		a, err := st.CreateAccount(ctx, fmt.Sprintf("u%05d@bench.relais.test", i), fmt.Sprintf("User %d", i), "x")
		if err != nil {
			log.Fatal(err)
		}
		accts[i] = a
	})
	per := conns / rooms
	roomIDs := make([]storage.RoomID, rooms)
	parallel(rooms, 64, func(r int) {
		var members []storage.AccountID
		for j := 1; j < per; j++ {
			members = append(members, accts[r*per+j].ID)
		}
		room, err := st.CreateRoom(ctx, storage.NewRoom{Kind: storage.RoomTeam, Name: fmt.Sprintf("room %d", r),
			CreatedBy: accts[r*per].ID, Members: members})
		if err != nil {
			log.Fatal(err)
		}
		roomIDs[r] = room.ID
	})
	log.Printf("setup: %d accounts, %d rooms of %d members in %v", conns, rooms, per, time.Since(start).Round(time.Millisecond))

	srv, err := chat.New(chat.Config{Store: st, Sessions: benchSessions{accts},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Limits: chat.Limits{RatePerSecond: 1000, Burst: 1000, ConnsPerUser: 2, Queue: 1024}})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	before := memInUse()

	ids := make([]string, rooms)
	for i, id := range roomIDs {
		ids[i] = strconv.FormatInt(int64(id), 10)
	}
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(exe, "-mode", "client", "-url", "ws://"+ln.Addr().String()+chat.WebSocketPath,
		"-conns", strconv.Itoa(conns), "-rooms", strconv.Itoa(rooms), "-rate", strconv.Itoa(rate), "-duration", duration.String())
	cmd.Env = append(os.Environ(), "BENCH_ROOMS="+strings.Join(ids, ","))
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch line {
		case "CONNECTED":
			after := memInUse()
			n := srv.Stats().Connections
			fmt.Printf("server: %d connections open; heap+stacks %d MiB before, %d MiB after: %.1f KiB per connection; RSS %s; goroutines %d\n",
				n, before>>20, after>>20, float64(after-before)/float64(max(n, 1))/1024, rss(), runtime.NumGoroutine())
			fmt.Fprintln(in, "GO")
		default:
			fmt.Println(line)
		}
	}
	cmd.Wait()
	st2 := srv.Stats()
	fmt.Printf("server: slow consumers %d, dropped frames %d, panics %d\n", st2.SlowConsumers, st2.DroppedFrames, st2.Panics)
	srv.Close()
	hs.Close()
}

func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

type benchClient struct {
	ws   *websocket.Conn
	room string
}

func client(url string, conns, rooms, rate int, duration time.Duration) {
	ids := strings.Split(os.Getenv("BENCH_ROOMS"), ",")
	if len(ids) != rooms {
		log.Fatalf("client: %d room ids for %d rooms", len(ids), rooms)
	}
	per := conns / rooms
	clients := make([]*benchClient, conns)
	var lat latencies
	var subscribed sync.WaitGroup
	subscribed.Add(conns)
	start := time.Now()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	parallel(conns, 100, func(i int) {
		h := http.Header{}
		h.Set("Cookie", fmt.Sprintf("relais_session=u%d", i))
		var ws *websocket.Conn
		var err error
		for try := 0; try < 5; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			ws, _, err = websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
			cancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			log.Fatalf("client %d: %v", i, err)
		}
		c := &benchClient{ws: ws, room: ids[i/per]}
		clients[i] = c
		write(ws, map[string]any{"type": "hello", "v": 1})
		write(ws, map[string]any{"type": "subscribe", "rooms": map[string]int{c.room: 0}})
		go c.readLoop(&subscribed, &lat)
	})
	subscribed.Wait()
	log.Printf("client: %d connections subscribed in %v", conns, time.Since(start).Round(time.Millisecond))
	fmt.Println("CONNECTED")
	sc := bufio.NewScanner(os.Stdin)
	sc.Scan() // GO

	// Sending phase: rate messages per second, round robin over the rooms,
	// each from the room's first member.
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(duration)
	sent := 0
	for time.Now().Before(end) {
		<-tick.C
		r := sent % rooms
		c := clients[r*per]
		write(c.ws, map[string]any{"type": "send", "room": json.Number(c.room), "clientId": strconv.Itoa(sent),
			"body": strconv.FormatInt(time.Now().UnixNano(), 10)})
		sent++
	}
	// Let the last fan-outs land.
	want := int64(sent * per)
	deadline := time.Now().Add(30 * time.Second)
	for lat.count() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	p50, p99, pmax, n := lat.summary()
	fmt.Printf("fan-out: %d messages sent (%d/s for %v) to rooms of %d: %d deliveries of %d expected; latency send->deliver p50 %v, p99 %v, max %v\n",
		sent, rate, duration, per, n, want, p50, p99, pmax)
	for _, c := range clients {
		c.ws.CloseNow()
	}
}

func write(ws *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		log.Printf("write: %v", err)
	}
}

func (c *benchClient) readLoop(subscribed *sync.WaitGroup, lat *latencies) {
	var f struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message struct {
			Body string `json:"body"`
		} `json:"message"`
	}
	done := false
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			if !done {
				subscribed.Done()
			}
			return
		}
		now := time.Now()
		f.Type, f.Message.Body = "", ""
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case "subscribed", "resync":
			if !done {
				done = true
				subscribed.Done()
			}
		case "message":
			if t, err := strconv.ParseInt(f.Message.Body, 10, 64); err == nil {
				lat.add(now.Sub(time.Unix(0, t)))
			}
		case "error":
			log.Printf("error frame: %s", f.Code)
		}
	}
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.d))
}

func (l *latencies) summary() (p50, p99, pmax time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.d)
	slices.Sort(d)
	if len(d) == 0 {
		return 0, 0, 0, 0
	}
	return d[len(d)/2], d[len(d)*99/100], d[len(d)-1], len(d)
}
