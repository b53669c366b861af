#!/usr/bin/env bash
# Chat load (issue 6): CONNS WebSocket connections on loopback in ROOMS
# rooms, messages at RATE/s for DURATION; prints the fan-out latency from
# the sender's send to each member's delivery (p50/p99/max, including the
# durable commit) and the server's memory per connection. Two processes
# (server, clients), so each has its own file descriptors: raise
# `ulimit -n` above CONNS + a few hundred.
#
#   bench/chat.sh [CONNS] [ROOMS] [RATE] [DURATION]   (10000 1000 500 20s)
#
# Measured 2026-11-23, 2 shared cores, SQLite store, 10,000 connections in
# 1,000 rooms of 10: server memory 35-38 KiB per connection (heap+stacks,
# 2 goroutines each); at 200 msg/s (2,000 deliveries/s) send->deliver p50
# 5 ms, p99 476 ms; at 500 msg/s the machine saturates (p50 1.5 s).
set -euo pipefail
conns=${1:-10000}
rooms=${2:-1000}
rate=${3:-500}
duration=${4:-20s}
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bin=$(mktemp -d)/chatbench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/chat
echo "== chat fan-out: $conns connections, $rooms rooms, $rate msg/s for $duration ($(nproc) cores)"
"$bin" -conns "$conns" -rooms "$rooms" -rate "$rate" -duration "$duration"
