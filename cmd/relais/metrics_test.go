package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsAfterOneMessage: a message sent with go-smtp over submissions
// and read over IMAP shows in GET /metrics, fetched with curl, in the text
// exposition format: the message counters moved, the DATA, IMAP and HTTP
// histograms have observations, the gauges are there.
func TestMetricsAfterOneMessage(t *testing.T) {
	in := startRelais(t, "")
	before := scrapeMetrics(t, in)
	require.Zero(t, counterValue(before, "relais_messages_received_total", map[string]string{"listener": "submission", "outcome": "accepted"}))

	c, err := smtp.DialTLS(in.addrs["submissions"], in.tlsConfig())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Auth(sasl.NewPlainClient("", claire, in.passwords[claire])))
	msg := "From: <" + claire + ">\r\nTo: <" + lucas + ">\r\nSubject: metrics\r\nMessage-ID: <metrics-1@demo.mssante.test>\r\n\r\nbonjour\r\n"
	require.NoError(t, c.SendMail(claire, []string{lucas}, strings.NewReader(msg)))
	// A refused recipient is not a message: the counters stay as they are.
	require.Error(t, c.SendMail(claire, []string{"nobody@demo.mssante.test"}, strings.NewReader(msg)))
	require.NoError(t, c.Quit())

	ic := in.imapLogin(lucas, in.passwords[lucas])
	_, err = ic.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	_, err = ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect()
	require.NoError(t, err)

	after := scrapeMetrics(t, in)
	sub := map[string]string{"listener": "submission"}
	assert.Equal(t, 1.0, counterValue(after, "relais_messages_received_total", map[string]string{"listener": "submission", "outcome": "accepted"}))
	assert.Equal(t, 1.0, counterValue(after, "relais_messages_delivered_total", sub), "one local recipient")
	data := histogram(t, after, "relais_smtp_data_duration_seconds", sub)
	assert.Equal(t, uint64(1), data.GetSampleCount())
	assert.Positive(t, data.GetSampleSum())
	assert.Equal(t, uint64(1), histogram(t, after, "relais_imap_command_duration_seconds", map[string]string{"command": "select"}).GetSampleCount())
	assert.GreaterOrEqual(t, histogram(t, after, "relais_imap_command_duration_seconds", map[string]string{"command": "fetch"}).GetSampleCount(), uint64(1))
	assert.Equal(t, 1.0, gaugeValue(after, "relais_imap_sessions", nil), "the IMAP session is still open")
	assert.Equal(t, 0.0, gaugeValue(after, "relais_imap_idle_sessions", nil))
	assert.Equal(t, 0.0, gaugeValue(after, "relais_chat_connections", nil))
	assert.Equal(t, 0.0, gaugeValue(after, "relais_queue_entries", nil))
	assert.Equal(t, 0.0, counterValue(after, "relais_panics_recovered_total", map[string]string{"component": "smtp_submission"}))
	// Scrapes are not timed; any other HTTPS request is, by API.
	_, err = runTool(t, "", "curl", "-sS", "--cacert", in.caFile(), "-o", "/dev/null", "https://localhost:"+port(t, in.addrs["http"])+"/healthz")
	require.NoError(t, err)
	final := scrapeMetrics(t, in)
	assert.Equal(t, uint64(1), histogram(t, final, "relais_http_request_duration_seconds", map[string]string{"api": "web", "code": "200"}).GetSampleCount())
}

// scrapeMetrics fetches /metrics with curl and parses it as the text
// exposition format.
func scrapeMetrics(t *testing.T, in *instance) map[string]*dto.MetricFamily {
	t.Helper()
	out, err := runTool(t, "", "curl", "-sS", "--fail", "--cacert", in.caFile(), "-H", "Accept: text/plain; version=0.0.4",
		"https://localhost:"+port(t, in.addrs["http"])+MetricsPath)
	require.NoError(t, err, out)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(out))
	require.NoError(t, err, "exposition format:\n%s", out)
	return fams
}

func port(t *testing.T, addr string) string {
	_, p := splitAddr(t, addr)
	return p
}

// metric finds the sample of family name whose labels include want.
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// counterValue is 0 for a series not exposed yet (a vector's series
// appears at its first increment).
func counterValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	return metric(fams, name, labels).GetCounter().GetValue()
}

func gaugeValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := metric(fams, name, labels)
	if m == nil {
		return -1 // absent: never equal to what a test expects
	}
	return m.GetGauge().GetValue()
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	m := metric(fams, name, labels)
	require.NotNil(t, m, "%s%v not exposed", name, labels)
	h := m.GetHistogram()
	require.NotNil(t, h, "%s is not a histogram", name)
	var last uint64
	for _, b := range h.GetBucket() {
		require.GreaterOrEqual(t, b.GetCumulativeCount(), last, "%s buckets are cumulative", name)
		last = b.GetCumulativeCount()
	}
	require.LessOrEqual(t, last, h.GetSampleCount())
	return h
}

// TestMetricsAllowList: /metrics answers loopback clients by default and
// the networks listed, and no one else.
func TestMetricsAllowList(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	for _, tc := range []struct {
		remote string
		allow  []netip.Prefix
		want   bool
	}{
		{"127.0.0.1:5000", metricsLoopback, true},
		{"127.8.9.10:5000", metricsLoopback, true},
		{"[::1]:5000", metricsLoopback, true},
		{"[::ffff:127.0.0.1]:5000", metricsLoopback, true},
		{"192.0.2.7:5000", metricsLoopback, false},
		{"[2001:db8::1]:5000", metricsLoopback, false},
		{"10.1.2.3:5000", lan, true},
		{"127.0.0.1:5000", lan, false},
		{"10.2.0.1:5000", lan, false},
		{"garbage", metricsLoopback, false},
		{"", metricsLoopback, false},
	} {
		assert.Equal(t, tc.want, remoteAllowed(tc.remote, tc.allow), "%s in %v", tc.remote, tc.allow)
	}
}

func TestMetricsAllowListParse(t *testing.T) {
	got, err := metricsAllowList(nil)
	require.NoError(t, err)
	assert.Equal(t, metricsLoopback, got)
	got, err = metricsAllowList([]string{"10.1.2.3/16", " 192.0.2.7 ", "2001:db8::/32", "::ffff:198.51.100.1"})
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.1/32")}, got)
	_, err = metricsAllowList([]string{"10.0.0.0/33", "prometheus.lan", "10.0.0.0/8"})
	assert.ErrorContains(t, err, `"10.0.0.0/33"`)
	assert.ErrorContains(t, err, `"prometheus.lan"`)
}
