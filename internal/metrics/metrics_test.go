package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape GETs the handler over a real HTTP connection and parses the text
// exposition format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

func find(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		ok := true
		for _, l := range m.GetLabel() {
			if want, has := labels[l.GetName()]; has && want != l.GetValue() {
				ok = false
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

func TestObservations(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler))
	m.MessageDone("inbound", OutcomeAccepted, 3, 0, 20*time.Millisecond)
	m.MessageDone("submission", OutcomeAccepted, 1, 2, 40*time.Millisecond)
	m.MessageDone("submission", OutcomeRejected, 0, 0, time.Millisecond)
	m.IMAPCommand("fetch", 2*time.Millisecond)
	m.AttemptDone(1500*time.Millisecond, 2, 1, 0)
	m.Gauge("things", "Things.", nil, func() float64 { return 7 })
	m.Queue(func(context.Context) (QueueDepth, error) { return QueueDepth{Entries: 4, Pending: 9}, nil })

	fams := scrape(t, m)
	assert.Equal(t, 1.0, find(fams, "relais_messages_received_total", map[string]string{"listener": "submission", "outcome": "rejected"}).GetCounter().GetValue())
	assert.Equal(t, 3.0, find(fams, "relais_messages_delivered_total", map[string]string{"listener": "inbound"}).GetCounter().GetValue())
	assert.Equal(t, 2.0, find(fams, "relais_messages_queued_total", map[string]string{"listener": "submission"}).GetCounter().GetValue())
	assert.Nil(t, find(fams, "relais_messages_queued_total", map[string]string{"listener": "inbound"}), "no series for nothing queued")
	data := find(fams, "relais_smtp_data_duration_seconds", map[string]string{"listener": "submission"}).GetHistogram()
	assert.Equal(t, uint64(2), data.GetSampleCount())
	assert.InDelta(t, 0.041, data.GetSampleSum(), 1e-9)
	assert.Equal(t, 2.0, find(fams, "relais_relay_recipients_total", map[string]string{"outcome": "relayed"}).GetCounter().GetValue())
	assert.Equal(t, 1.0, find(fams, "relais_relay_recipients_total", map[string]string{"outcome": "failed"}).GetCounter().GetValue())
	assert.Nil(t, find(fams, "relais_relay_recipients_total", map[string]string{"outcome": "deferred"}))
	assert.Equal(t, uint64(1), find(fams, "relais_imap_command_duration_seconds", map[string]string{"command": "fetch"}).GetHistogram().GetSampleCount())
	assert.Equal(t, 7.0, find(fams, "relais_things", nil).GetGauge().GetValue())
	assert.Equal(t, 4.0, find(fams, "relais_queue_entries", nil).GetGauge().GetValue())
	assert.Equal(t, 9.0, find(fams, "relais_queue_recipients_pending", nil).GetGauge().GetValue())
	assert.NotNil(t, fams["go_goroutines"], "the Go runtime collector")
}

// A queue that cannot be counted leaves its gauges out of the scrape (not
// a false zero) and the rest is served.
func TestQueueDepthFailure(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler))
	m.Queue(func(context.Context) (QueueDepth, error) { return QueueDepth{}, errors.New("database is locked") })
	m.MessageDone("inbound", OutcomeAccepted, 1, 0, time.Millisecond)
	fams := scrape(t, m)
	assert.Nil(t, fams["relais_queue_entries"])
	assert.NotNil(t, fams["relais_messages_received_total"])
}

func TestInstrumentHTTP(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler))
	h := m.InstrumentHTTP(func(r *http.Request) string {
		if r.URL.Path == "/ws" {
			return ""
		}
		return "api"
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, p := range []string{"/a", "/b", "/missing", "/ws"} {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
	}
	fams := scrape(t, m)
	assert.Equal(t, uint64(2), find(fams, "relais_http_request_duration_seconds", map[string]string{"api": "api", "code": "200"}).GetHistogram().GetSampleCount())
	assert.Equal(t, uint64(1), find(fams, "relais_http_request_duration_seconds", map[string]string{"api": "api", "code": "404"}).GetHistogram().GetSampleCount())
	var total uint64
	for _, s := range fams["relais_http_request_duration_seconds"].GetMetric() {
		total += s.GetHistogram().GetSampleCount()
	}
	assert.Equal(t, uint64(3), total, "the untimed request is not counted")
}
