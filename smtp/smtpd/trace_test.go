package smtpd

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestTraceHeaders(t *testing.T) {
	date := time.Date(2026, 11, 23, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	got := traceHeaders(traceInfo{
		from: "dr@demo.test", helo: "client (evil)\r\nX-Injected: 1", remote: &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4242},
		hostname: "mx.demo.test", tls: &tlsInfo{version: tls.VersionTLS13, cipher: tls.TLS_AES_128_GCM_SHA256},
		auth: true, id: "abc123", rcpt: "nurse@demo.test", date: date,
	})
	assert.Equal(t, "Return-Path: <dr@demo.test>\r\n"+
		"Received: from client__evil___X-Injected:_1 ([IPv6:2001:db8::1])\r\n"+
		"\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n"+
		"\tby mx.demo.test (Relais) with ESMTPSA id abc123\r\n"+
		"\tfor <nurse@demo.test>; Mon, 23 Nov 2026 08:00:00 +0100\r\n", got)

	got = traceHeaders(traceInfo{remote: &net.TCPAddr{IP: net.ParseIP("192.0.2.7")}, hostname: "mx", utf8: true, id: "x", date: date})
	assert.Equal(t, "Return-Path: <>\r\n"+
		"Received: from unknown ([192.0.2.7])\r\n"+
		"\tby mx (Relais) with UTF8SMTP id x; Mon, 23 Nov 2026 08:00:00 +0100\r\n", got)
}

func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		utf8, tls, auth bool
		want            string
	}{
		{false, false, false, "ESMTP"}, {false, true, false, "ESMTPS"}, {false, false, true, "ESMTPA"},
		{false, true, true, "ESMTPSA"}, {true, true, true, "UTF8SMTPSA"}, {true, false, false, "UTF8SMTP"},
	} {
		assert.Equal(t, tc.want, protocol(tc.utf8, tc.tls, tc.auth))
	}
}
