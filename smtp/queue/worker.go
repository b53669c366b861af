package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/storage"
)

// Store is what the worker needs of storage: the queue, the delivery
// status, and local delivery for reports to local senders.
type Store interface {
	LeaseDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration) ([]storage.QueueEntry, error)
	QueueMessage(ctx context.Context, id storage.QueueID) ([]byte, error)
	RecordAttempt(ctx context.Context, id storage.QueueID, results []storage.AttemptResult) error
	Enqueue(ctx context.Context, out storage.Outbound) (storage.QueueID, error)
	QueueEntry(ctx context.Context, id storage.QueueID) (storage.QueueEntry, error)
	DropQueue(ctx context.Context, id storage.QueueID) error
	SetDeliveryStatus(ctx context.Context, acct storage.AccountID, st storage.DeliveryStatus) error
	AccountByAddress(ctx context.Context, address string) (storage.Account, error)
	Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []storage.Recipient) ([]storage.Delivered, error)
}

// Resolver finds where a domain's mail goes (net.DefaultResolver).
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Operators identifies the remote server by its certificate: the
// directory's Trust.
type Operators interface {
	PeerOperator(ctx context.Context, cert *x509.Certificate) (directory.Operator, error)
}

// Sealer prepares the bytes sent to one recipient: the message encrypted to
// that recipient's certificate. An error wrapping ErrPermanent fails the
// recipient for good (no certificate, say); any other error defers it.
type Sealer interface {
	Seal(ctx context.Context, raw []byte, rcpt string) ([]byte, error)
}

// ErrPermanent marks a Sealer error that retrying cannot fix.
var ErrPermanent = errors.New("queue: permanent failure")

// DefaultBackoff is the wait after the first, second... failed attempt;
// the last one repeats. The first retries are quick because most
// temporary failures are a restart or a short outage of the remote
// operator, and the mail is medical correspondence someone is waiting for;
// from the fourth on they are at least 30 minutes apart, as RFC 5321
// 4.5.4.1 advises, and they settle at every 4 hours: about 35 attempts
// over the default 5-day expiry.
var DefaultBackoff = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour,
}

// Defaults of Config.
const (
	// DefaultExpiry: RFC 5321 4.5.4.1 says the give-up time needs to be at
	// least 4-5 days. Used for the reports this package queues; the
	// expiry of a submitted message is set when it is queued.
	DefaultExpiry      = 5 * 24 * time.Hour
	DefaultDelayNotice = 4 * time.Hour
	DefaultWorkers     = 4
	// DefaultLeaseFor must outlast an attempt: an attempt is cut at 90% of
	// it, and the SMTP timeouts below fit inside.
	DefaultLeaseFor = 15 * time.Minute
	DefaultPoll     = 30 * time.Second
)

// SMTP client timeouts (RFC 5321 4.5.3.2 suggests 5 minutes per command
// and 10 for the final dot; commands are shortened to keep an attempt
// within its lease).
const (
	dialTimeout       = 30 * time.Second
	commandTimeout    = 2 * time.Minute
	submissionTimeout = 10 * time.Minute
	maxTargets        = 10 // addresses tried per domain and attempt
)

// Config is the worker's configuration.
type Config struct {
	// Hostname is our name: EHLO and Reporting-MTA.
	Hostname string
	Store    Store
	// Routes maps a domain to "host:port" instead of its MX (tests, private
	// networks). The host is also the TLS server name checked.
	Routes map[string]string
	// Resolver is net.DefaultResolver when nil.
	Resolver Resolver
	// ClientCert returns the operator certificate presented as the TLS
	// client certificate; called at each connection so renewals are seen.
	ClientCert func() (*tls.Certificate, error)
	// RootCAs verify the remote server certificate (the system roots when
	// nil).
	RootCAs   *x509.CertPool
	Operators Operators
	// Sealer encrypts per recipient; nil sends the queued bytes as they are.
	Sealer Sealer
	// Backoff: DefaultBackoff when empty.
	Backoff []time.Duration
	// Expiry of the reports this worker queues for remote senders, and of
	// an entry queued without one (DefaultExpiry when zero).
	Expiry time.Duration
	// DelayNotice is how long after queueing a delay DSN goes out (once);
	// negative disables delay reports.
	DelayNotice time.Duration
	Workers     int // parallel deliveries
	LeaseFor    time.Duration
	Poll        time.Duration // how often to look for due entries without a Kick
	Logger      *slog.Logger
	Now         func() time.Time
	// TLSSuites are the TLS 1.2 cipher suites (the MSSanté ones when nil).
	TLSSuites []uint16
	// Observer is told about each recorded attempt (metrics). Nil: nobody
	// is.
	Observer Observer
}

// Observer is told about delivery attempts, for metrics; cmd/relais wires
// internal/metrics.
type Observer interface {
	// AttemptDone is called once an attempt of a queue entry is recorded:
	// how long it took, from the lease to the record, and how many
	// recipients were relayed, failed for good, or deferred.
	AttemptDone(elapsed time.Duration, relayed, failed, deferred int)
}

// mssanteSuites are the TLS 1.2 suites of the MSSanté client profile
// (0xC030, 0xC02F), as crypto/pki's ServerTLSConfig has them.
var mssanteSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
}

// Worker delivers the outbound queue.
type Worker struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}
}

// New checks cfg, fills in defaults and returns a worker.
func New(cfg Config) (*Worker, error) {
	var errs []error
	if cfg.Hostname == "" {
		errs = append(errs, errors.New("queue: Hostname is required"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("queue: Store is required"))
	}
	if cfg.Operators == nil {
		errs = append(errs, errors.New("queue: Operators (the trust list) is required"))
	}
	if cfg.ClientCert == nil {
		errs = append(errs, errors.New("queue: ClientCert is required (mutual TLS)"))
	}
	for d, r := range cfg.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			errs = append(errs, fmt.Errorf("queue: route for %s: %w", d, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.DelayNotice == 0 {
		cfg.DelayNotice = DefaultDelayNotice
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.LeaseFor <= 0 {
		cfg.LeaseFor = DefaultLeaseFor
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TLSSuites == nil {
		cfg.TLSSuites = mssanteSuites
	}
	routes := make(map[string]string, len(cfg.Routes))
	for d, r := range cfg.Routes {
		routes[normalizeDomain(d)] = r
	}
	cfg.Routes = routes
	return &Worker{cfg: cfg, log: cfg.Logger.With("component", "queue"), kick: make(chan struct{}, 1)}, nil
}

// Kick tells the worker an entry was queued: it looks at once.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers due entries until ctx ends, then waits for the attempts in
// flight: they stop at once (their connections are closed), record what
// was settled, and leave the rest to a later lease.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	done := make(chan storage.QueueID, w.cfg.Workers)
	// busy guards against attempting an entry twice at once, should a
	// lease be returned again while its attempt runs.
	busy := map[storage.QueueID]bool{}
	timer := time.NewTimer(w.cfg.Poll)
	defer timer.Stop()
	for {
		if free := w.cfg.Workers - len(busy); free > 0 && ctx.Err() == nil {
			entries, err := w.cfg.Store.LeaseDue(ctx, w.cfg.Now(), free, w.cfg.LeaseFor)
			if err != nil && ctx.Err() == nil {
				w.log.Error("leasing due entries", "err", err)
			}
			for _, e := range entries {
				if busy[e.ID] {
					continue
				}
				busy[e.ID] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { done <- e.ID }()
					w.attempt(ctx, e)
				}()
			}
		}
		timer.Reset(w.cfg.Poll)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-w.kick:
		case id := <-done:
			delete(busy, id)
		case <-timer.C:
		}
	}
}

// outcome is what became of one recipient in one attempt.
type outcome struct {
	rcpt storage.QueueRecipient
	kind outcomeKind
	// reply is the remote reply ("250 2.0.0 Ok") or a local explanation.
	reply string
	// status is the RFC 3463 code for a report.
	status string
	host   string // the remote host that answered, "" if none
	// remoteDSN: the next hop offered DSN (RFC 3461), so it reports
	// success itself.
	remoteDSN bool
}

type outcomeKind int

const (
	deferred outcomeKind = iota
	relayed
	failed
)

// attempt delivers the due recipients of a leased entry and records the
// outcome. A panic is contained here: the lease runs out and the entry is
// tried again.
func (w *Worker) attempt(runCtx context.Context, e storage.QueueEntry) {
	start := time.Now()
	log := w.log.With("queue", int64(e.ID))
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic in delivery attempt", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	if e.Expires.IsZero() {
		e.Expires = e.Created.Add(w.cfg.Expiry) // a queued entry always gives up some day
	}
	ctx, cancel := context.WithTimeout(runCtx, w.cfg.LeaseFor*9/10)
	defer cancel()
	raw, err := w.cfg.Store.QueueMessage(ctx, e.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return // dropped meanwhile
	}
	if err != nil {
		log.Error("reading queued message", "err", err)
		return
	}
	now := w.cfg.Now()
	var due []storage.QueueRecipient
	for _, r := range e.Recipients {
		if r.State == storage.QueuePending && !r.NextAttempt.After(now) {
			due = append(due, r)
		}
	}
	// By domain, in the order of the recipients.
	var domains []string
	byDomain := map[string][]storage.QueueRecipient{}
	for _, r := range due {
		d := r.Domain
		if d == "" {
			d = domainOf(r.Address)
		}
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], r)
	}
	var outcomes []outcome
	for _, d := range domains {
		outcomes = append(outcomes, w.deliverDomain(ctx, log, e, raw, d, byDomain[d])...)
	}
	if runCtx.Err() != nil {
		// Shutting down: keep what was settled, leave the rest untouched
		// for the next lease (RFC 5321 6.1: at least once).
		outcomes = slices.DeleteFunc(outcomes, func(o outcome) bool { return o.kind == deferred })
		if len(outcomes) == 0 {
			return
		}
	}
	// Recording must not be cut short by the shutdown that ended the
	// attempt: a delivered recipient not recorded is delivered twice.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(runCtx), 30*time.Second)
	defer rcancel()
	w.settle(rctx, log, e, raw, outcomes, start)
}

// settle turns outcomes into reports, delivery statuses and the attempt
// record, in that order: a crash in between repeats a report rather than
// losing one.
func (w *Worker) settle(ctx context.Context, log *slog.Logger, e storage.QueueEntry, raw []byte, outcomes []outcome, start time.Time) {
	now := w.cfg.Now()
	var results []storage.AttemptResult
	var statuses []storage.DeliveryStatus
	var failedReport, delayReport, relayReport []outcome
	for _, o := range outcomes {
		res := storage.AttemptResult{Address: o.rcpt.Address, Error: o.reply, At: now, DelayNotified: o.rcpt.DelayNotified}
		st := storage.DeliveryStatus{MessageID: e.MessageID, Recipient: o.rcpt.Address, Detail: o.reply, Updated: now}
		switch o.kind {
		case relayed:
			res.State, res.Error = storage.QueueDelivered, ""
			st.State = storage.StatusRelayed
			// RFC 3461 4.1 / 5.2.2: the next hop does not offer DSN, so
			// the success report that was asked for ends here.
			if !o.remoteDSN && wants(o.rcpt.Notify, storage.NotifySuccess) {
				relayReport = append(relayReport, o)
			}
		case failed:
			res.State = storage.QueueFailed
			st.State = storage.StatusFailed
			if wants(o.rcpt.Notify, storage.NotifyFailure) {
				failedReport = append(failedReport, o)
			}
		case deferred:
			if !now.Before(e.Expires) {
				// RFC 5321 4.5.4.1 give-up time; RFC 3463 4.4.7.
				o.status = "4.4.7"
				o.reply = "delivery time expired; last error: " + o.reply
				res.State, res.Error = storage.QueueFailed, o.reply
				st.State, st.Detail = storage.StatusFailed, o.reply
				if wants(o.rcpt.Notify, storage.NotifyFailure) {
					failedReport = append(failedReport, o)
				}
				break
			}
			res.State = storage.QueuePending
			res.NextAttempt = now.Add(w.backoff(o.rcpt.Attempts))
			if res.NextAttempt.After(e.Expires) {
				res.NextAttempt = e.Expires // one last try at the give-up time
			}
			st.State = storage.StatusDelayed
			if !o.rcpt.DelayNotified && w.cfg.DelayNotice > 0 && now.Sub(e.Created) >= w.cfg.DelayNotice &&
				wants(o.rcpt.Notify, storage.NotifyDelay) && e.Sender != "" {
				res.DelayNotified = true
				delayReport = append(delayReport, o)
			}
		}
		results = append(results, res)
		statuses = append(statuses, st)
	}

	if err := w.report(ctx, e, raw, failedReport, now); err != nil {
		log.Error("failure report not sent", "err", err)
	}
	if err := w.report(ctx, e, raw, delayReport, now); err != nil {
		log.Error("delay report not sent", "err", err)
	}
	if err := w.report(ctx, e, raw, relayReport, now); err != nil {
		log.Error("relay report not sent", "err", err)
	}
	if e.Account != 0 && e.MessageID != "" {
		for _, st := range statuses {
			if err := w.cfg.Store.SetDeliveryStatus(ctx, e.Account, st); err != nil {
				log.Error("recording delivery status", "err", err)
			}
		}
	}
	if err := w.cfg.Store.RecordAttempt(ctx, e.ID, results); err != nil {
		log.Error("recording the attempt", "err", err)
		return
	}
	var nRelayed, nFailed, nDeferred int
	for _, r := range results {
		switch r.State {
		case storage.QueueDelivered:
			nRelayed++
		case storage.QueueFailed:
			nFailed++
		default:
			nDeferred++
		}
	}
	log.Info("attempt recorded", "relayed", nRelayed, "failed", nFailed, "deferred", nDeferred,
		"reports", len(failedReport)+len(delayReport)+len(relayReport))
	if w.cfg.Observer != nil {
		w.cfg.Observer.AttemptDone(time.Since(start), nRelayed, nFailed, nDeferred)
	}
}

func (w *Worker) backoff(attempts int) time.Duration {
	return w.cfg.Backoff[min(max(attempts, 0), len(w.cfg.Backoff)-1)]
}

// wants reports whether a NOTIFY list asks for kind (RFC 3461 4.1: absent
// means FAILURE and DELAY; NEVER means nothing).
func wants(notify []string, kind string) bool {
	if len(notify) == 0 {
		return kind == storage.NotifyFailure || kind == storage.NotifyDelay
	}
	for _, n := range notify {
		if strings.EqualFold(n, storage.NotifyNever) {
			return false
		}
	}
	return slices.ContainsFunc(notify, func(n string) bool { return strings.EqualFold(n, kind) })
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return normalizeDomain(addr[i+1:])
}

func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
