// Package metrics is Relais's Prometheus instrumentation: the counters,
// gauges and histograms of the mail, IMAP, relay, chat and HTTP services,
// exposed in the Prometheus text exposition format (version 0.0.4, and
// OpenMetrics 1.0 when the scraper asks for it).
//
// The protocol packages do not import it: each declares the small observer
// interface it calls (smtpd.Observer, imapd.Observer, queue.Observer), and
// *Metrics satisfies them all; cmd/relais wires the two together. Gauges
// that a component already knows (open sessions, chat connections, the
// queue's depth) are read at scrape time through functions, so nothing is
// counted twice.
//
// No label ever carries an address, an account, a message id or anything
// about a patient: labels are listener, protocol command, API and outcome
// names from small fixed sets.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "relais"

// Outcomes of a message transaction (MessageDone).
const (
	OutcomeAccepted = "accepted" // committed, 250 sent
	OutcomeRejected = "rejected" // refused for good (5xx)
	OutcomeFailed   = "failed"   // temporary failure (4xx): the client retries
)

// Buckets, in seconds.
var (
	// commitBuckets: a DATA transaction, from a few ms (small local
	// message) to the S/MIME and fsync bound cases.
	commitBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// commandBuckets: an IMAP command or an HTTP request.
	commandBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
	// attemptBuckets: a relay attempt includes DNS, TLS and the remote
	// server's answer to the final dot (RFC 5321 4.5.3.2.6: up to 10 min).
	attemptBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
)

// Metrics holds the registry and the instruments. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	received  *prometheus.CounterVec
	delivered *prometheus.CounterVec
	queued    *prometheus.CounterVec
	data      *prometheus.HistogramVec
	relayed   *prometheus.CounterVec
	attempt   prometheus.Histogram
	imapCmd   *prometheus.HistogramVec
	httpReq   *prometheus.HistogramVec

	mu       sync.Mutex
	byAPI    map[string]http.Handler // InstrumentHTTP's per-API wrappers
	scrapeTO time.Duration
}

// New returns a Metrics with the Go runtime and process collectors
// registered. log receives scrape-time errors (slog.Default when nil).
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		log:      log,
		byAPI:    map[string]http.Handler{},
		scrapeTO: 5 * time.Second,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_received_total",
			Help: "Message transactions ended (SMTP DATA or BDAT, or the documents API), by listener and outcome (accepted, rejected: 5xx, failed: 4xx).",
		}, []string{"listener", "outcome"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_delivered_total",
			Help: "Local recipients whose copy was committed to their mailbox, by listener.",
		}, []string{"listener"}),
		queued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_queued_total",
			Help: "Recipients of other operators queued for relay, by listener.",
		}, []string{"listener"}),
		data: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "smtp_data_duration_seconds",
			Help:    "Time from the start of DATA (or BDAT, or a documents API send) to the reply, the durable commit included, by listener.",
			Buckets: commitBuckets,
		}, []string{"listener"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "relay_recipients_total",
			Help: "Outcomes of relay delivery attempts per recipient: relayed (accepted by the other operator), failed (for good), deferred (retried later).",
		}, []string{"outcome"}),
		attempt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "relay_attempt_duration_seconds",
			Help:    "Duration of one relay delivery attempt of a queue entry (every due recipient, every domain), recording included.",
			Buckets: attemptBuckets,
		}),
		imapCmd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "imap_command_duration_seconds",
			Help:    "Duration of IMAP commands served from storage, by command (IDLE excluded: see relais_imap_idle_sessions).",
			Buckets: commandBuckets,
		}, []string{"command"}),
		httpReq: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "Duration of HTTPS requests, by API and status code (WebSocket connections excluded).",
			Buckets: commandBuckets,
		}, []string{"api", "code"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: Namespace}),
		m.received, m.delivered, m.queued, m.data, m.relayed, m.attempt, m.imapCmd, m.httpReq,
	)
	return m
}

// Registry is where the instruments are registered (for tests, and for
// collectors of other components).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the exposition format the scraper asks
// for. It does not restrict who may read: see cmd/relais.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{m.log},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Timeout:           m.scrapeTO + time.Second,
	})
}

// MessageDone records the end of one message transaction (smtpd.Observer):
// listener is "inbound", "submission" or "api"; outcome one of the Outcome
// constants; local and remote count the recipients committed locally and
// queued for relay (zero unless accepted).
func (m *Metrics) MessageDone(listener, outcome string, local, remote int, elapsed time.Duration) {
	m.received.WithLabelValues(listener, outcome).Inc()
	if local > 0 {
		m.delivered.WithLabelValues(listener).Add(float64(local))
	}
	if remote > 0 {
		m.queued.WithLabelValues(listener).Add(float64(remote))
	}
	m.data.WithLabelValues(listener).Observe(elapsed.Seconds())
}

// IMAPCommand records one IMAP command's duration (imapd.Observer).
func (m *Metrics) IMAPCommand(command string, elapsed time.Duration) {
	m.imapCmd.WithLabelValues(command).Observe(elapsed.Seconds())
}

// AttemptDone records one relay attempt of a queue entry (queue.Observer):
// how many recipients were relayed, failed for good or deferred.
func (m *Metrics) AttemptDone(elapsed time.Duration, relayed, failed, deferred int) {
	m.attempt.Observe(elapsed.Seconds())
	for outcome, n := range map[string]int{"relayed": relayed, "failed": failed, "deferred": deferred} {
		if n > 0 {
			m.relayed.WithLabelValues(outcome).Add(float64(n))
		}
	}
}

// InstrumentHTTP times every request h serves, labelled with the API that
// api names for it (a small fixed set: the label's cardinality is that of
// api's answers). A request for which api returns "" is served untimed
// (WebSocket upgrades, which last as long as the connection).
func (m *Metrics) InstrumentHTTP(api func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := api(r)
		if name == "" {
			h.ServeHTTP(w, r)
			return
		}
		m.mu.Lock()
		ih, ok := m.byAPI[name]
		if !ok {
			ih = promhttp.InstrumentHandlerDuration(m.httpReq.MustCurryWith(prometheus.Labels{"api": name}), h)
			m.byAPI[name] = ih
		}
		m.mu.Unlock()
		ih.ServeHTTP(w, r)
	})
}

// Gauge registers a gauge read from f at each scrape.
func (m *Metrics) Gauge(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: name, Help: help, ConstLabels: labels,
	}, f))
}

// Counter registers a counter read from f at each scrape (a component's
// own monotonic count, such as recovered panics).
func (m *Metrics) Counter(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: name, Help: help, ConstLabels: labels,
	}, f))
}

// QueueDepth is the outbound queue's size at one moment.
type QueueDepth struct {
	Entries int64 // queued messages
	Pending int64 // their recipients still to deliver
}

// Queue registers the queue depth gauges, read with depth at each scrape
// (bounded by a timeout; a failure is logged and the gauges are left out of
// that scrape rather than reported as zero).
func (m *Metrics) Queue(depth func(ctx context.Context) (QueueDepth, error)) {
	m.reg.MustRegister(&queueCollector{m: m, depth: depth,
		entries: prometheus.NewDesc(Namespace+"_queue_entries", "Messages in the outbound queue.", nil, nil),
		pending: prometheus.NewDesc(Namespace+"_queue_recipients_pending", "Recipients of queued messages still to be delivered.", nil, nil),
	})
}

type queueCollector struct {
	m                *Metrics
	depth            func(ctx context.Context) (QueueDepth, error)
	entries, pending *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.pending
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.m.scrapeTO)
	defer cancel()
	d, err := c.depth(ctx)
	if err != nil {
		c.m.log.Warn("metrics: queue depth", "err", err)
		ch <- prometheus.NewInvalidMetric(c.entries, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(d.Entries))
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(d.Pending))
}

// slogPrinter adapts slog to promhttp.Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	args := make([]any, 0, 2*len(v))
	for i, x := range v {
		args = append(args, "v"+strconv.Itoa(i), x)
	}
	p.log.Warn("metrics: scrape", args...)
}
