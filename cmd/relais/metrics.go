package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relais-mssante/relais/chat"
	"github.com/relais-mssante/relais/chat/web"
	"github.com/relais-mssante/relais/directory/dirapi"
	"github.com/relais-mssante/relais/directory/fhir"
	"github.com/relais-mssante/relais/directory/ldapd"
	"github.com/relais-mssante/relais/imap/imapd"
	"github.com/relais-mssante/relais/internal/metrics"
	"github.com/relais-mssante/relais/smtp/docapi"
	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/smtp/smtpd"
	"github.com/relais-mssante/relais/smtp/statusapi"
)

// MetricsPath is where the HTTPS listener serves the Prometheus metrics.
//
// Who may read them: the metrics carry no address, account or message
// identifier (their labels are listener, command, API and outcome names),
// but they do tell how much mail flows and when, so they are not public.
// By default only clients on a loopback address are answered (a Prometheus
// or node agent on the same machine, or an SSH tunnel); others get 403.
// metricsLoopback is that default; an installation that scrapes from
// another host lists the scraper's network (metricsAllowList). No
// credentials are asked: the scrape configuration stays simple and holds
// nothing secret, and a network restriction is what Prometheus
// deployments commonly rely on. Behind a reverse proxy every client has
// the proxy's address: do not proxy /metrics.
const MetricsPath = "/metrics"

// The wiring: *metrics.Metrics is every component's observer.
var (
	_ smtpd.Observer = (*metrics.Metrics)(nil)
	_ imapd.Observer = (*metrics.Metrics)(nil)
	_ queue.Observer = (*metrics.Metrics)(nil)
)

// metricsLoopback is the default allow list of /metrics.
var metricsLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// metricsAllowList parses the networks allowed to read /metrics (CIDR, or
// a single address); an empty list is metricsLoopback.
func metricsAllowList(nets []string) ([]netip.Prefix, error) {
	if len(nets) == 0 {
		return metricsLoopback, nil
	}
	var out []netip.Prefix
	var errs []error
	for _, n := range nets {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(n))
			if aerr != nil {
				errs = append(errs, fmt.Errorf("metrics allow %q: want a network (10.0.0.0/8) or an address", n))
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// served is what the gauges read at scrape time.
type served struct {
	inbound, submission *smtpd.Server
	imap                *imapd.Server
	ldap                *ldapd.Server
	chat                *chat.Server
	store               queueCounter
}

// registerGauges registers the gauges and counters the components keep
// themselves, read at each scrape.
func registerGauges(m *metrics.Metrics, s served) {
	for _, l := range []struct {
		name string
		srv  *smtpd.Server
	}{{"inbound", s.inbound}, {"submission", s.submission}} {
		srv := l.srv
		m.Gauge("smtp_sessions", "Open SMTP connections, by listener.", prometheus.Labels{"listener": l.name},
			func() float64 { return float64(srv.Connections()) })
		m.Counter("panics_recovered_total", "Panics recovered inside a connection (the server kept serving), by component.",
			prometheus.Labels{"component": "smtp_" + l.name}, func() float64 { return float64(srv.Panics()) })
	}
	m.Gauge("imap_sessions", "Open IMAP connections.", nil, func() float64 { return float64(s.imap.Sessions()) })
	m.Gauge("imap_idle_sessions", "IMAP sessions in IDLE (RFC 2177).", nil, func() float64 { return float64(s.imap.Idling()) })
	m.Counter("panics_recovered_total", "Panics recovered inside a connection (the server kept serving), by component.",
		prometheus.Labels{"component": "imap"}, func() float64 { return float64(s.imap.Panics()) })
	m.Counter("panics_recovered_total", "Panics recovered inside a connection (the server kept serving), by component.",
		prometheus.Labels{"component": "ldap"}, func() float64 { return float64(s.ldap.Panics()) })
	m.Gauge("chat_connections", "Open chat WebSocket connections.", nil, func() float64 { return float64(s.chat.Stats().Connections) })
	m.Counter("chat_slow_consumers_total", "Chat connections closed because they did not keep up.", nil,
		func() float64 { return float64(s.chat.Stats().SlowConsumers) })
	m.Counter("panics_recovered_total", "Panics recovered inside a connection (the server kept serving), by component.",
		prometheus.Labels{"component": "chat"}, func() float64 { return float64(s.chat.Stats().Panics) })
	m.Queue(queueDepth(s.store))
}

// queueCounter is what the queue gauges read: both stores count their
// queue with two COUNTs on indexed columns.
type queueCounter interface {
	QueueCounts(ctx context.Context) (entries, pending int64, err error)
}

// queueDepth returns the function the queue gauges read.
func queueDepth(qc queueCounter) func(context.Context) (metrics.QueueDepth, error) {
	return func(ctx context.Context) (metrics.QueueDepth, error) {
		e, p, err := qc.QueueCounts(ctx)
		if err != nil {
			return metrics.QueueDepth{}, fmt.Errorf("counting the queue: %w", err)
		}
		return metrics.QueueDepth{Entries: e, Pending: p}, nil
	}
}

// withMetrics serves MetricsPath (GET, to allowed clients only) and times
// every other request by API before h serves it.
func withMetrics(m *metrics.Metrics, allow []netip.Prefix, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, metricsHandler(allow, m.Handler()))
	mux.Handle("/", m.InstrumentHTTP(apiName, h))
	return mux
}

// metricsHandler answers only clients whose address is in allow; others
// get 403 (not 404: an administrator who forgot the allow list sees why).
func metricsHandler(allow []netip.Prefix, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !remoteAllowed(r.RemoteAddr, allow) {
			http.Error(w, "metrics are served to allowed networks only", http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// remoteAllowed reports whether remote ("ip:port", as in
// http.Request.RemoteAddr) is inside one of allow.
func remoteAllowed(remote string, allow []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap() // ::ffff:127.0.0.1 is loopback too
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// apiName names the API a request is for: the label of its latency. ""
// leaves the request untimed (the chat's WebSocket lasts as long as the
// connection).
func apiName(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == chat.WebSocketPath:
		return ""
	case strings.HasPrefix(p, chat.APIPrefix):
		return "chat"
	case strings.HasPrefix(p, dirapi.Prefix):
		return "directory"
	case p == fhir.Prefix || strings.HasPrefix(p, fhir.Prefix+"/"):
		return "fhir"
	case strings.HasPrefix(p, statusapi.Prefix):
		return "status"
	case p == docapi.Prefix || strings.HasPrefix(p, docapi.Prefix+"/") || p == docapi.OpenAPIPath:
		return "documents"
	case strings.HasPrefix(p, web.DocumentPath):
		return "web_documents"
	case strings.HasPrefix(p, "/pki/") || p == "/ca.pem":
		return "pki"
	}
	return "web"
}
