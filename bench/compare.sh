#!/usr/bin/env bash
# Side by side: Relais against Postfix + Dovecot (issue 7), in one run,
# the same workloads from the same Go load client (bench/load):
#
#   - SMTP ingest end to end: N messages of 10 KiB over 8 submission
#     connections (STARTTLS + AUTH PLAIN on both), spread over 10
#     mailboxes, timed until every message is visible in its INBOX (IMAP
#     STATUS); 2,000 then 20,000 messages;
#   - IMAP mixed workload: 50 clients, each repeating SELECT, FETCH of the
#     50 newest envelopes, FETCH of one body, SEARCH on the subject, STORE
#     of a flag; ops/s and p50/p99 per command;
#   - memory per idle connection: 1,000 IMAP connections logged in, INBOX
#     selected, in IDLE, opened in two halves; server memory (RSS and PSS
#     summed over all its processes): the second half's growth per
#     connection, and the whole growth once settled per connection.
#
# Postfix and Dovecot come from Debian's packages (installed when missing)
# and run from a private temporary root on free loopback ports, never the
# system instances; Postfix delivers to Dovecot by LMTP; both keep their
# default durability (Postfix fsyncs its queue files, Dovecot's maildir
# mail_fsync=optimized). Relais runs bin/relais on its embedded SQLite
# store in a fresh data directory. Everything is stopped at the end.
#
#   bench/compare.sh [--quick] [--only=W] [--keep] [--postgres]
#     --quick     2,000 messages only, 10 s of IMAP, 200 idle connections
#     --only=W    one workload W: ingest, imap (after a 2,000-message
#                 ingest) or idle
#     --keep      leave the temporary root (configurations, logs) in place
#     --postgres  a third column: Relais on PostgreSQL (relais serve
#                 --database), in a database created for the run and
#                 dropped at the end, on the server $BENCH_POSTGRES names
#                 (default postgres://root@127.0.0.1:5432/postgres)
#
# Needs root (apt-get, Postfix and Dovecot drop privileges themselves).
set -euo pipefail

quick=false
keep=false
postgres=false
only=
pg_admin=${BENCH_POSTGRES:-postgres://root@127.0.0.1:5432/postgres}
for a in "$@"; do
	case $a in
	--quick) quick=true ;;
	--keep) keep=true ;;
	--postgres) postgres=true ;;
	--only=*) only=${a#--only=} ;;
	*) echo "usage: bench/compare.sh [--quick] [--keep] [--postgres] [--only=ingest|imap|idle]" >&2; exit 2 ;;
	esac
done
if $quick; then
	ingest_sizes=(2000) imap_duration=10s idle_conns=200 settle=30
else
	ingest_sizes=(2000 20000) imap_duration=30s idle_conns=1000 settle=125
fi
conns=8
msg_size=10240
imap_clients=50
domain=bench.test
mailboxes=10

cd "$(dirname "$0")/.."
repo=$(pwd)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((idle_conns * 3 + 1000)) ]; then
	echo "compare: ulimit -n is $(ulimit -n), need $((idle_conns * 3 + 1000))" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "compare: run as root (Debian packages, Postfix and Dovecot instances)" >&2
	exit 1
fi

# --- packages --------------------------------------------------------------
missing=()
for p in postfix dovecot-core dovecot-imapd dovecot-lmtpd openssl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	apt-get update -qq
	# Debian's policy-rc.d, where present, keeps the system instances stopped.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- temporary root and cleanup --------------------------------------------
root=$(mktemp -d /tmp/relais-bench.XXXXXX)
chmod 755 "$root" # Postfix and Dovecot's unprivileged processes reach their sockets under it
relais_pids=() idle_pids=() pg_db=
cleanup() {
	set +e
	for p in "${idle_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	for p in "${relais_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -n "$pg_db" ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null
	[ -f "$root/postfix/etc/main.cf" ] && postfix -c "$root/postfix/etc" stop >/dev/null 2>&1
	[ -f "$root/dovecot/dovecot.conf" ] && dovecot -c "$root/dovecot/dovecot.conf" stop >/dev/null 2>&1
	if $keep; then echo "compare: kept $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building bin/relais and the load client"
go build -o bin/relais ./cmd/relais
go build -o "$root/load" ./bench/load
load=$root/load
relais=$repo/bin/relais

password=$(openssl rand -hex 16)
export LOAD_PASSWORD=$password
sender=sender@$domain
users=()
for i in $(seq 0 $((mailboxes - 1))); do users+=("box$i@$domain"); done
rcpts=$(IFS=,; echo "${users[*]}")

mapfile -t ports < <("$load" ports 4)
pf_sub=127.0.0.1:${ports[0]} dc_imap=127.0.0.1:${ports[1]}
rl_sub=127.0.0.1:${ports[2]} rl_imap=127.0.0.1:${ports[3]}

# One RSA 2048 certificate for Postfix and Dovecot (Relais makes its own,
# RSA 2048 too, from its CA).
mkdir -p "$root/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-keyout "$root/tls/key.pem" -out "$root/tls/cert.pem" 2>/dev/null
chmod 644 "$root/tls/cert.pem"
chmod 600 "$root/tls/key.pem"

# --- Dovecot -----------------------------------------------------------------
# Virtual users in a passwd-file, with the same password hash as Relais
# (argon2id, 64 MiB); maildir (default mail_fsync=optimized); IMAP with
# STARTTLS, LMTP on a unix socket, SASL for Postfix on another.
dc=$root/dovecot
mkdir -p "$dc/run" "$dc/state" "$root/mail"
chown nobody:nogroup "$root/mail"
hash=$(doveadm pw -s ARGON2ID -p "$password")
for u in "$sender" "${users[@]}"; do echo "$u:$hash"; done >"$dc/users"
chmod 640 "$dc/users"
chgrp dovecot "$dc/users"
cat >"$dc/dovecot.conf" <<EOF
# relais bench (bench/compare.sh): a private instance
instance_name = relais-bench
base_dir = $dc/run
state_dir = $dc/state
log_path = $dc/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = required
ssl_cert = <$root/tls/cert.pem
ssl_key = <$root/tls/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = $dc/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$root/mail/%d/%n
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
}
# 1,000 idle connections of 10 accounts from one IP: raise the per-user
# limit (default 10) and the process limits (default 100).
protocol imap {
  mail_max_userip_connections = 5000
}
# High-performance login mode (Dovecot's recommendation for many
# connections): login processes serve many clients each.
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${dc_imap##*:}
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
  process_min_avail = 2
  client_limit = 5000
  vsz_limit = 1G
}
service imap {
  process_limit = 5000
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
  client_limit = 10000
}
service anvil {
  client_limit = 10000
}
service stats {
  client_limit = 10000
}
default_client_limit = 10000
EOF
dovecot -c "$dc/dovecot.conf"
dc_pid() { cat "$dc/run/master.pid"; }

# --- Postfix -----------------------------------------------------------------
# A private instance (postfix -c): submission on a loopback port with
# STARTTLS required and SASL by Dovecot, the bench domain as a virtual
# mailbox domain delivered by LMTP to Dovecot. Default queue durability.
pf=$root/postfix
mkdir -p "$pf/etc" "$pf/queue" "$pf/data"
printf '%s OK\n' "${users[@]}" "$sender" >"$pf/etc/vmailbox"
cat >"$pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
myhostname = postfix.bench.invalid
mydomain = bench.invalid
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = $domain
virtual_mailbox_maps = texthash:$pf/etc/vmailbox
virtual_transport = lmtp:unix:$dc/run/lmtp
smtpd_tls_cert_file = $root/tls/cert.pem
smtpd_tls_key_file = $root/tls/key.pem
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dc/run/auth-postfix
EOF
# No chroot: the instance's paths are outside its queue directory.
cat >"$pf/etc/master.cf" <<EOF
$pf_sub inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
chown postfix "$pf/data"
postfix -c "$pf/etc" check || { cat "$pf/maillog" >&2; exit 1; }
postfix -c "$pf/etc" start >/dev/null 2>&1 || { cat "$pf/maillog" >&2; exit 1; }

# --- Relais ------------------------------------------------------------------
# start_relais NAME SUBMISSION IMAP [DATABASE-URL]: a fresh installation
# (no demo) with the same accounts and password, only submission
# (STARTTLS + AUTH) and IMAP (STARTTLS) listening.
export RELAIS_PKI_PASSPHRASE=$password
start_relais() {
	local dir=$root/$1 db=()
	[ -n "${4:-}" ] && db=(--database "$4")
	mkdir -p "$dir"
	printf 'data = "%s"\nhostname = "localhost"\nlog = "warn"\n' "$dir/data" >"$dir/relais.toml"
	"$relais" admin domain add "$domain" --data "$dir/data" "${db[@]}" >/dev/null
	for u in "$sender" "${users[@]}"; do
		echo "$password" | "$relais" admin user add "$u" --password-stdin --data "$dir/data" "${db[@]}" >/dev/null
	done
	"$relais" serve --config "$dir/relais.toml" "${db[@]}" --submission "$2" --imap "$3" \
		--smtp "" --submissions "" --imaps "" --http "" --ldap "" --ldaps "" >"$dir/relais.out" 2>"$dir/relais.log" &
	relais_pids+=($!)
}
start_relais rl "$rl_sub" "$rl_imap"
names=(pd rl) labels=("Postfix+Dovecot" "Relais (SQLite)") subs=("$pf_sub" "$rl_sub") imaps=("$dc_imap" "$rl_imap")
if $postgres; then
	pg_db=relais_bench_$$
	psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
	mapfile -t ports < <("$load" ports 2)
	start_relais pg "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "${pg_admin%/*}/$pg_db"
	names+=(pg) labels+=("Relais (PostgreSQL)") subs+=("127.0.0.1:${ports[0]}") imaps+=("127.0.0.1:${ports[1]}")
fi
pid_of() { # NAME: the process whose tree holds the server's memory
	case $1 in
	pd) cat "$dc/run/master.pid" ;;
	rl) echo "${relais_pids[0]}" ;;
	pg) echo "${relais_pids[1]}" ;;
	esac
}

"$load" wait -timeout 60s "${subs[@]}" "${imaps[@]}"
for i in "${!names[@]}"; do echo "== ${labels[$i]}: submission ${subs[$i]}, IMAP ${imaps[$i]}"; done
echo "== $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- workloads -----------------------------------------------------------------
# result FILE KEY: the value of key=... in the RESULT lines of FILE.
result() { { grep -o "$2=[^ ]*" "$1" 2>/dev/null || true; } | head -1 | cut -d= -f2; }
# cmdresult NAME CMD KEY: KEY of CMD's line in NAME's IMAP results.
cmdresult() { { grep "cmd=$2 " "$root/$1.imap" 2>/dev/null | grep -o "$3=[^ ]*" || true; } | cut -d= -f2; }
# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# row LABEL HIGHER-IS-BETTER VALUE...: one line of the table, values in
# the order of names, each Relais column followed by its ratio to P+D
# (how many times better Relais is).
rows=()
row() {
	local label=$1 higher=$2 line
	shift 2
	line="$label|$1"
	for v in "${@:2}"; do
		if $higher; then line+="|$v|$(ratio "$v" "$1")"; else line+="|$v|$(ratio "$1" "$v")"; fi
	done
	rows+=("$line")
}
# each FUNC ARGS: FUNC's output for every server, as row values.
each() {
	local srv v
	for srv in "${names[@]}"; do
		v=$("$@" "$srv")
		echo "${v:-n/a}"
	done
}

runs() { [ -z "$only" ] || [ "$only" = "$1" ]; }
# The IMAP workload needs the mailboxes that ingest fills; idle does not.
if [ "$only" = imap ]; then ingest_sizes=(2000); elif [ "$only" = idle ]; then ingest_sizes=(); fi
for n in "${ingest_sizes[@]}"; do
	echo "== ingest $n messages x $msg_size bytes over $conns connections"
	for i in "${!names[@]}"; do
		echo "-- ${labels[$i]}"
		"$load" ingest -smtp "${subs[$i]}" -imap "${imaps[$i]}" -from "$sender" -to "$rcpts" \
			-n "$n" -c $conns -size $msg_size | tee "$root/${names[$i]}.ingest.$n"
	done
	ingest_value() { result "$root/$2.ingest.$n" "$1"; }
	row "ingest $n, visible in INBOX (msg/s)" true $(each ingest_value visible_per_s)
	row "ingest $n, accepted 250 (msg/s)" true $(each ingest_value accepted_per_s)
done

runs imap && echo "== IMAP mixed workload: $imap_clients clients, $imap_duration"
runs imap && for i in "${!names[@]}"; do
	echo "-- ${labels[$i]}"
	"$load" imap -imap "${imaps[$i]}" -users "$rcpts" -clients $imap_clients -duration $imap_duration \
		| tee "$root/${names[$i]}.imap"
done
imap_value() { result "$root/$1.imap" ops_per_s; }
runs imap && row "IMAP mixed (ops/s)" true $(each imap_value)
runs imap && for cmd in SELECT FETCH-ENVELOPES FETCH-BODY SEARCH STORE; do
	for p in p50 p99; do
		cmd_value() { cmdresult "$1" "$cmd" "${p}_ms"; }
		row "  $cmd $p (ms)" false $(each cmd_value)
	done
done

# The memory of each server's process tree, in two halves: before any
# idle connection, with the first half of them ("mid"), with all of them
# ("full"), each read 5 s after the connections are ready, then once more
# after settling ("settled"). The second half's growth per connection is
# the cost of one more idle connection; the growth from before to
# settled, per connection, also holds what stays from the logins: each
# hashes a password with argon2id (64 MiB, on both sides), and a Go
# process gives freed heap back to the system only gradually.
# idle_half NAME INDEX N STAGE: N more connections, held in the background.
idle_half() {
	local ready=$root/$1.ready.$4
	"$load" idle -imap "${imaps[$2]}" -users "$rcpts" -n "$3" -ready "$ready" &
	idle_pids+=($!)
	while [ ! -f "$ready" ]; do
		if ! kill -0 "${idle_pids[-1]}" 2>/dev/null; then
			wait "${idle_pids[-1]}" || true
			echo "compare: the idle client failed" >&2
			exit 1
		fi
		sleep 0.5
	done
	sleep 5
	"$load" mem "$(pid_of "$1")" | sed "s/^RESULT mem/RESULT mem stage=$4/" | tee "$root/$1.mem.$4"
}
idle_pids=()
half=$((idle_conns / 2))
runs idle && echo "== memory per idle IMAP connection: $idle_conns connections in IDLE, in two halves"
for i in "${!names[@]}"; do
	name=${names[$i]}
	runs idle || break
	echo "-- ${labels[$i]}"
	pid=$(pid_of "$name")
	"$load" mem "$pid" | sed 's/^RESULT mem/RESULT mem stage=before/' | tee "$root/$name.mem.before"
	idle_half "$name" "$i" "$half" mid
	idle_half "$name" "$i" $((idle_conns - half)) full
	# Settled: after $settle s, then until two readings 10 s apart are
	# within 2% (at most one more minute).
	sleep "$settle"
	"$load" mem "$pid" >"$root/$name.mem.settled"
	for _ in 1 2 3 4 5 6; do
		prev=$(result "$root/$name.mem.settled" rss_kib)
		sleep 10
		"$load" mem "$pid" >"$root/$name.mem.settled"
		awk -v a="$prev" -v b="$(result "$root/$name.mem.settled" rss_kib)" \
			'BEGIN { exit !(b <= a * 1.02 && b >= a * 0.98) }' && break
	done
	sed 's/^RESULT mem/RESULT mem stage=settled/' "$root/$name.mem.settled"
	kill "${idle_pids[@]}"
	wait "${idle_pids[@]}" || true
	idle_pids=()
done
per_conn() { # KEY FROM TO COUNT NAME: KiB per connection from stage FROM to TO
	awk -v a="$(result "$root/$5.mem.$3" "$1")" -v b="$(result "$root/$5.mem.$2" "$1")" -v n="$4" \
		'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.1f", (a - b) / n }'
}
runs idle && row "idle IMAP, RSS of one more (KiB/conn)" false $(each per_conn rss_kib mid full $((idle_conns - half)))
runs idle && row "idle IMAP, PSS of one more (KiB/conn)" false $(each per_conn pss_kib mid full $((idle_conns - half)))
runs idle && row "idle IMAP, RSS growth settled / conns" false $(each per_conn rss_kib before settled "$idle_conns")
runs idle && row "idle IMAP, PSS growth settled / conns" false $(each per_conn pss_kib before settled "$idle_conns")

echo
echo "== results ($(nproc) cores, load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   ratio: how many times better Relais is than Postfix+Dovecot (throughput: Relais/P+D; latency, memory: P+D/Relais)"
{
	header="workload|${labels[0]}"
	for l in "${labels[@]:1}"; do header+="|$l|ratio"; done
	echo "$header"
	printf '%s\n' "${rows[@]}"
} | column -t -s '|'
