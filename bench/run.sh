#!/usr/bin/env bash
# bench/run.sh — measure hookroute's ingest and end-to-end throughput as
# ratios against baselines measured in the same run, on this machine.
#
#   bench/run.sh            (from anywhere; about 3–4 minutes, plus the ladder's)
#   CLOSED_LOOP=0 BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
#     bench/run.sh          (the ladder alone, PostgreSQL system included)
#
# In one run it:
#   1. builds hookroute and cmd/hookload, makes a throwaway RSA-2048 key pair
#      (openssl) and pre-signs a pool of distinct SalesIQ bodies, in a temp dir;
#   2. probes fsync latency on the temp dir's file system;
#   3. measures, at 32 and then 128 closed-loop senders for DURATION each
#      (each concurrency runs its baselines just before hookroute):
#      (a) bare baseline: net/http reads the body (1 MiB cap), answers 202;
#      (b) verify baseline: (a) + RSA-2048 PKCS#1 v1.5 verification;
#      (c) hookroute: salesiq source with the throwaway key, one rule
#          chat.rating == "sad" routed to an http sink at a local hookload
#          sink, SQLite store in the temp dir (fresh for each run);
#      (d) end to end, from (c)'s runs: deliveries/s at the sink during the
#          window, and the sustained rate from the first acknowledgement to
#          the last delivery once the backlog has drained;
#   4. prints markdown tables with absolute numbers and ratios to (a) and (b);
#   5. the ladder (issue 17): each system under test gets open-loop steps
#      (hookload ingest --rate: requests due at fixed intervals whatever the
#      answers, latency from each request's scheduled time) at offered rates
#      rising ×LADDER_FACTOR from LADDER_START up to LADDER_MAX, and stops at
#      the first step that fails. A step holds when, over its window, no
#      answer was a non-2xx or an error, the p99 acknowledgement from the
#      scheduled time was under LADDER_MAX_P99, and the backlog at the
#      window's end (deliveries the 2xx answers announced minus distinct
#      deliveries at the sink) was at most LADDER_MAX_BACKLOG worth of the
#      offered rate. A system's sustained rate is its highest held step.
#      Systems: (a) hookroute on SQLite, the config of (c) above;
#      (b) two hookroute replicas on one fresh PostgreSQL database, the load
#      round-robin between them, delivering to one sink (only with
#      BENCH_POSTGRES); (c) the Benthos peer of bench/peer (built here; its
#      config.yaml template filled in with free ports and the same sink).
#      Every step starts its system afresh (a new SQLite file or PostgreSQL
#      database, a new sink), so a failed step's backlog cannot weigh on the
#      next; after its window, a step waits (at most LADDER_DRAIN) for the
#      sink to receive what was acknowledged, which the table shows but the
#      hold does not depend on. It prints a table per system, the sustained
#      rates, and the ratios hookroute/Benthos and PostgreSQL ×2/SQLite.
#
# The servers under test run on CPU 1 and the load generator and the sink on
# CPU 0 (taskset), so that the server's core is its own; without taskset or
# with one CPU, nothing is pinned and the table says so.
#
# Environment knobs: CLOSED_LOOP (1; 0 skips steps 2–4), DURATION (10s),
# WARMUP (1s), CONCURRENCIES ("32 128"), ROUNDS (1: run each concurrency's three cases this many times in a row,
# each round's ratios against its own baselines, plus their medians),
# POOL (160000 bodies, enough for 10 s at 128 senders here; grown and retried
# automatically if a run needs more),
# SINK_CONCURRENCY (unset: hookroute's default), BASE_PORT (18180),
# DRAIN_TIMEOUT (120s), HOOKROUTE_BIN (a hookroute binary to measure instead
# of building this checkout: another commit's, for before/after pairs),
# KEEP (1: keep the temp dir), PIN_CPUS (0: pin
# nothing, as docs/performance.md's reference figures were taken: load generator
# and servers on the same cores).
# Ladder knobs: LADDER (1; 0 skips it), LADDER_SYSTEMS ("sqlite pg2 benthos"),
# LADDER_START (400 events/s), LADDER_FACTOR (1.5), LADDER_MAX (12000),
# LADDER_STEP_DURATION (10s), LADDER_WARMUP (1s), LADDER_MAX_P99 (50ms),
# LADDER_MAX_BACKLOG (1s), LADDER_MAX_INFLIGHT (2048), LADDER_SINK_CONCURRENCY
# (64: the peer's max_in_flight to the sink), LADDER_DRAIN (10s: the
# longest wait after a step for its deliveries, reported, not judged),
# BENCH_POSTGRES (unset: no PostgreSQL system; else a URL of a database the
# script may connect to and create databases from, e.g.
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable: each step gets
# a fresh database, dropped after it), PEER_BIN (a built bench/peer; unset:
# built into the temp dir, which takes minutes the first time, while the Go
# module cache fills). When pinned, the PostgreSQL replicas both run on the
# server's CPU, like the single SQLite router; PostgreSQL itself is not pinned.
# The pool grows as the steps need (hookload pool --append).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
CONCURRENCIES=${CONCURRENCIES:-"32 128"}
ROUNDS=${ROUNDS:-1}
ROUND=0 # the round being run; 0 when there is one
POOL=${POOL:-160000}
BASE_PORT=${BASE_PORT:-18180}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120s}
CLOSED_LOOP=${CLOSED_LOOP:-1}
LADDER=${LADDER:-1}
LADDER_SYSTEMS=${LADDER_SYSTEMS:-"sqlite pg2 benthos"}
LADDER_START=${LADDER_START:-400}
LADDER_FACTOR=${LADDER_FACTOR:-1.5}
LADDER_MAX=${LADDER_MAX:-12000}
LADDER_STEP_DURATION=${LADDER_STEP_DURATION:-10s}
LADDER_WARMUP=${LADDER_WARMUP:-1s}
LADDER_MAX_P99=${LADDER_MAX_P99:-50ms}
LADDER_MAX_BACKLOG=${LADDER_MAX_BACKLOG:-1s}
LADDER_MAX_INFLIGHT=${LADDER_MAX_INFLIGHT:-2048}
LADDER_DRAIN=${LADDER_DRAIN:-10s}
BENCH_POSTGRES=${BENCH_POSTGRES:-}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hookroute-bench.XXXXXX")
PIDS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# stop PID: end one process we started, by its id, and wait for it.
stop() {
	local pid=$1
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	# Forget it, so that cleanup never signals a later process that got
	# the same id (the ladder starts and stops many).
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$pid" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
	if [[ -n ${PG_DB:-} ]]; then # a ladder step's, interrupted
		psql "$BENCH_POSTGRES" -qAt -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	if [[ ${KEEP:-0} == 1 ]]; then
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPU CMD...: run CMD in the background (pinned to CPU when
# pinning is on), logging to $WORK/NAME.log; sets STARTED to its pid.
start() {
	local name=$1 cpu=$2
	shift 2
	if [[ -n $PIN ]]; then
		taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
	else
		"$@" >"$WORK/$name.log" 2>&1 &
	fi
	STARTED=$!
	PIDS+=("$STARTED")
}

# wait_port PORT PID: until something listens on 127.0.0.1:PORT, or fail
# if PID died.
wait_port() {
	local port=$1 pid=$2
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid died before listening on $port:"
			tail -n 20 "$WORK"/*.log >&2 || true
			return 1
		fi
		sleep 0.1
	done
	log "nothing listens on $port after 10s"
	return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

BARE_PORT=$BASE_PORT
VERIFY_PORT=$((BASE_PORT + 1))
HR_PORT=$((BASE_PORT + 2))
HR_ADMIN_PORT=$((BASE_PORT + 3))
SINK_PORT=$((BASE_PORT + 4))
HR2_PORT=$((BASE_PORT + 5)) # the second PostgreSQL replica
HR2_ADMIN_PORT=$((BASE_PORT + 6))
PEER_PORT=$((BASE_PORT + 7))
PEER_HTTP_PORT=$((BASE_PORT + 8))
for p in $BARE_PORT $VERIFY_PORT $HR_PORT $HR_ADMIN_PORT $SINK_PORT $HR2_PORT $HR2_ADMIN_PORT $PEER_PORT $PEER_HTTP_PORT; do
	port_free "$p" || {
		log "port $p is in use; set BASE_PORT"
		exit 1
	}
done

NPROC=$(nproc)
PIN=""
SERVER_CPU=1
LOAD_CPU=0
if [[ ${PIN_CPUS:-1} == 0 ]]; then
	PINNING="none (PIN_CPUS=0): server, load generator and sink share all $NPROC CPUs"
elif command -v taskset >/dev/null && ((NPROC >= 2)); then
	PIN=1
	PINNING="server on CPU $SERVER_CPU; load generator and sink on CPU $LOAD_CPU (taskset)"
else
	PINNING="none (taskset missing or one CPU): server, load generator and sink share the CPUs"
fi

log "work dir $WORK"
log "building hookroute and hookload"
if [[ -n ${HOOKROUTE_BIN:-} ]]; then
	# A build to compare (another commit's), measured by this harness.
	cp "$HOOKROUTE_BIN" "$WORK/hookroute"
	(cd "$ROOT" && go build -o "$WORK/hookload" ./cmd/hookload)
else
	(cd "$ROOT" && go build -o "$WORK/hookroute" . && go build -o "$WORK/hookload" ./cmd/hookload)
fi
HL=$WORK/hookload
HR=$WORK/hookroute

log "generating a throwaway RSA-2048 key pair"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/private.pem" 2>/dev/null
openssl pkey -in "$WORK/private.pem" -pubout -out "$WORK/public.pem" 2>/dev/null

# make_pool N: grow $WORK/pool.bin to N distinct bodies (all CPUs), signing
# only those it lacks: one salt for the whole run keeps them distinct.
SALT=$(($(date +%s%N) / 1000000 % 1000000000))
POOL_SIZE=0 # bodies signed so far
make_pool() {
	log "pre-signing bodies up to $1 (RSA-2048, every CPU; not part of any measurement)"
	"$HL" pool --key "$WORK/private.pem" --n "$1" --out "$WORK/pool.bin" --append --salt "$SALT" >&2
	POOL_SIZE=$1
	POOL=$1
}
if [[ $CLOSED_LOOP == 1 ]]; then
	make_pool "$POOL"
fi

FSYNC=""
if [[ $CLOSED_LOOP == 1 ]]; then
	log "fsync probe"
	FSYNC=$("$HL" fsync --dir "$WORK" --n 500)
	log "$FSYNC"
fi

RESULTS=$WORK/results.jsonl
: >"$RESULTS"

# ingest LABEL CONC URL PID [extra flags]: one measured run, its JSON line
# appended to $RESULTS. Exit 3: a --unique run ran out of bodies; the pool
# has been re-signed bigger, and the caller runs again on a fresh store.
ingest() {
	local label=$1 conc=$2 url=$3 pid=$4
	shift 4
	local out rc=0 need
	local cmd=("$HL" ingest --url "$url" --pool "$WORK/pool.bin" --concurrency "$conc"
		--duration "$DURATION" --warmup "$WARMUP" --pid "$pid" --json --label "$label" --round "$ROUND" "$@")
	if [[ -n $PIN ]]; then
		cmd=(taskset -c "$LOAD_CPU" "${cmd[@]}")
	fi
	out=$("${cmd[@]}" 2>"$WORK/ingest.err") || rc=$?
	cat "$WORK/ingest.err" >&2
	if ((rc == 3)); then
		need=$(grep -o 'at least [0-9]*' "$WORK/ingest.err" | grep -o '[0-9]*$')
		make_pool "$((need > POOL * 3 / 2 ? need : POOL * 3 / 2))" || return 1
		return 3
	fi
	if ((rc != 0)); then
		log "ingest failed (exit $rc)"
		return "$rc"
	fi
	printf '%s\n' "$out" | head -n 1 >&2
	printf '%s\n' "$out" | tail -n 1 >>"$RESULTS"
}

# hookroute_config FILE STORE_URL PORT ADMIN_PORT: the bench's hookroute
# config: the salesiq source with the throwaway key, one rule
# chat.rating == "sad" to an http sink at the hookload sink.
hookroute_config() {
	local file=$1 store=$2 port=$3 admin=$4
	{
		cat <<EOF
server:
  listen: "127.0.0.1:$port"
  admin_listen: "127.0.0.1:$admin"
store:
  url: "$store"
egress:
  allow: ["127.0.0.1/32"]   # the bench sink is on loopback
sources:
  - name: salesiq
    type: salesiq
    public_keys:
      - file: $WORK/public.pem
sinks:
  - name: bench-sink
    type: http
    url: http://127.0.0.1:$SINK_PORT/deliver
rules:
  - name: sad-chat
    source: salesiq
    when: chat.rating == "sad"
    to:
      - sink: bench-sink
EOF
		if [[ -n ${SINK_CONCURRENCY:-} ]]; then
			printf 'defaults:\n  concurrency: %s\n' "$SINK_CONCURRENCY"
		fi
	} >"$file"
}

# (c) and (d): hookroute, a fresh store and sink for each run.
hookroute_run() {
	local c=$1 dir=$WORK/hookroute-$1
	rm -rf "$dir"
	mkdir -p "$dir"
	hookroute_config "$dir/rules.yaml" "sqlite:$dir/hookroute.db" "$HR_PORT" "$HR_ADMIN_PORT"

	# Called as "hookroute_run || …", where set -e is off: check each step.
	"$HR" check -c "$dir/rules.yaml" >&2 || return 1
	start "sink-$c" "$LOAD_CPU" "$HL" sink --listen "127.0.0.1:$SINK_PORT" --window 0
	local sink=$STARTED
	wait_port "$SINK_PORT" "$sink" || return 1
	start "hookroute-$c" "$SERVER_CPU" "$HR" serve -c "$dir/rules.yaml" --log-level warn --log-format text
	local hr=$STARTED
	wait_port "$HR_PORT" "$hr" || return 1
	curl -fsS "http://127.0.0.1:$HR_PORT/readyz" >/dev/null || return 1

	local rc=0
	ingest hookroute "$c" "http://127.0.0.1:$HR_PORT/hooks/salesiq" "$hr" \
		--sink-stats "http://127.0.0.1:$SINK_PORT/stats" --drain-timeout "$DRAIN_TIMEOUT" || rc=$?
	stop "$hr"
	stop "$sink"
	if [[ -s $WORK/hookroute-$c.log ]]; then
		log "hookroute log (warnings and errors), last lines:"
		tail -n 5 "$WORK/hookroute-$c.log" >&2
	fi
	return "$rc"
}

# (a) and (b): the baselines, which keep no state, so the pool is cycled.
baseline_run() {
	local mode=$1 c=$2 port=$BARE_PORT
	[[ $mode == verify ]] && port=$VERIFY_PORT
	log "baseline $mode, $c senders"
	start "baseline-$mode-$c" "$SERVER_CPU" "$HL" baseline --listen "127.0.0.1:$port" --mode "$mode" --pubkey "$WORK/public.pem"
	local pid=$STARTED
	wait_port "$port" "$pid"
	ingest "$mode" "$c" "http://127.0.0.1:$port/hooks/salesiq" "$pid" --unique=false
	stop "$pid"
}

# jstr S: S as a JSON string (no control characters expected).
jstr() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

# machine_meta: the meta fields every report starts with (JSON members,
# each followed by a comma): the machine and the build measured.
machine_meta() {
	printf '"go":%s,' "$(jstr "$GOVERSION")"
	printf '"nproc":%s,' "$(jstr "$NPROC")"
	printf '"cpu":%s,' "$(jstr "${CPU_MODEL:-unknown}")"
	printf '"kernel":%s,' "$(jstr "$(uname -r)")"
	printf '"hookroute":%s,' "$(jstr "$REV")"
}
GOVERSION=$(cd "$ROOT" && go version)
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if (cd "$ROOT" && git status --porcelain 2>/dev/null | grep -q .); then
	REV="$REV (working tree modified)"
fi
if [[ -n ${HOOKROUTE_BIN:-} ]]; then
	REV="$HOOKROUTE_BIN (given as HOOKROUTE_BIN; harness at $REV)"
fi
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

if [[ $CLOSED_LOOP == 1 ]]; then
	# Each concurrency runs its baselines right before hookroute, so that the
	# runs compared share the machine's conditions as far as possible.
	for c in $CONCURRENCIES; do
		for round in $(seq "$ROUNDS"); do
			if ((ROUNDS > 1)); then
				ROUND=$round
				log "round $round of $ROUNDS, $c senders"
			fi
			baseline_run bare "$c"
			baseline_run verify "$c"
			log "hookroute, $c senders"
			rc=0
			hookroute_run "$c" || rc=$?
			if ((rc == 3)); then
				log "hookroute, $c senders, again with the bigger pool"
				hookroute_run "$c"
			elif ((rc != 0)); then
				exit "$rc"
			fi
		done
	done

	BODY_BYTES=$(grep -o '"body_bytes":[0-9]*' "$RESULTS" | head -n1 | cut -d: -f2)
	{
		printf '{"meta":{'
		machine_meta
		printf '"pinning":%s,' "$(jstr "$PINNING")"
		printf '"fsync probe":%s,' "$(jstr "${FSYNC#fsync probe }")"
		printf '"runs":%s,' "$(jstr "$DURATION measured after $WARMUP warm-up, closed loop, ${BODY_BYTES:-?}-byte signed SalesIQ bodies (pool of $POOL)")"
		printf '"rounds":%s,' "$(jstr "$ROUNDS")"
		printf '"hookroute sink concurrency":%s' "$(jstr "${SINK_CONCURRENCY:-hookroute default (defaults.concurrency not set)}")"
		printf '}}\n'
	} >"$WORK/meta.jsonl"
	cat "$WORK/meta.jsonl" "$RESULTS" >"$WORK/report.jsonl"

	echo
	echo "## hookroute bench ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
	echo
	"$HL" report "$WORK/report.jsonl"
fi

[[ $LADDER == 1 ]] || exit 0

# ---- The ladder (issue 17): sustained rates, open loop.

LADDER_RESULTS=$WORK/ladder.jsonl
: >"$LADDER_RESULTS"

# The peer's http_client keeps at most max_in_flight (64) requests to the
# sink open; hookroute's sink gets the same bound (its default, 4, is for
# third-party APIs), so that the ladder compares the pipelines, not their
# defaults.
SINK_CONCURRENCY=${LADDER_SINK_CONCURRENCY:-64}

# seconds D: a Go duration of whole or fractional seconds or milliseconds
# (10s, 2.5s, 500ms) in seconds, for the pool's arithmetic.
seconds() {
	case $1 in
	*ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
	*s) printf '%s\n' "${1%s}" ;;
	*)
		log "durations here are in s or ms: $1"
		return 1
		;;
	esac
}
STEP_SECONDS=$(awk -v d="$(seconds "$LADDER_STEP_DURATION")" -v w="$(seconds "$LADDER_WARMUP")" 'BEGIN { print d + w }')

# A step sends a distinct body per request: the pool must hold rate ×
# (warm-up + window) of them. Each step's store is fresh, so every step
# reuses the same bodies.
ensure_pool() {
	local need
	need=$(awk -v r="$1" -v s="$STEP_SECONDS" 'BEGIN { printf "%d", r * s * 1.05 + 100 }')
	if ((need > POOL_SIZE)); then
		make_pool "$need"
	fi
}

# ladder_ingest LABEL RATE URLS PIDS: one open-loop step against URLS
# (comma-separated: round-robin), its JSON line appended to
# $LADDER_RESULTS. Returns 0 if the step held, 1 if not, 2 if it could not
# be run.
ladder_ingest() {
	local label=$1 rate=$2 urls=$3 pids=$4 out rc=0
	local cmd=("$HL" ingest --url "$urls" --pool "$WORK/pool.bin" --rate "$rate"
		--duration "$LADDER_STEP_DURATION" --warmup "$LADDER_WARMUP" --max-inflight "$LADDER_MAX_INFLIGHT"
		--max-p99 "$LADDER_MAX_P99" --max-backlog "$LADDER_MAX_BACKLOG" --timeout 10s
		--sink-stats "http://127.0.0.1:$SINK_PORT/stats" --drain-timeout "$LADDER_DRAIN" --drain-stall 3s
		--pid "$pids" --json --label "$label")
	if [[ -n $PIN ]]; then
		cmd=(taskset -c "$LOAD_CPU" "${cmd[@]}")
	fi
	out=$("${cmd[@]}" 2>"$WORK/ingest.err") || rc=$?
	cat "$WORK/ingest.err" >&2
	# Exit 1 with a result line: nothing was acknowledged, which is a step
	# that failed, not a broken run.
	if ! printf '%s\n' "$out" | tail -n 1 | grep -q '"open":'; then
		log "ingest failed (exit $rc)"
		return 2
	fi
	printf '%s\n' "$out" | head -n 1 >&2
	printf '%s\n' "$out" | tail -n 1 >>"$LADDER_RESULTS"
	printf '%s\n' "$out" | tail -n 1 | grep -q '"hold":{"held":true'
}

# wait_ready URL PID: until URL answers 2xx, or fail if PID died.
wait_ready() {
	local url=$1 pid=$2
	for _ in $(seq 150); do
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid died before $url answered"
			return 1
		fi
		sleep 0.1
	done
	log "$url did not answer 2xx within 15s"
	return 1
}

# start_sink NAME: a fresh hookload sink; sets SINK_PID.
start_sink() {
	start "$1" "$LOAD_CPU" "$HL" sink --listen "127.0.0.1:$SINK_PORT" --window 0
	SINK_PID=$STARTED
	wait_port "$SINK_PORT" "$SINK_PID"
}

# A system's up_* function starts it afresh for one step and sets URLS and
# SUT_PIDS; down stops what up_* started.
SUT_PIDS=""
SINK_PID=""
down() {
	local p
	for p in ${SUT_PIDS//,/ } $SINK_PID; do
		stop "$p"
	done
	SUT_PIDS="" SINK_PID=""
	if [[ -n ${PG_DB:-} ]]; then
		psql "$BENCH_POSTGRES" -qAt -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
			log "could not drop database $PG_DB"
		PG_DB=""
	fi
}

up_sqlite() {
	local step=$1 dir=$WORK/ladder-sqlite-$1
	mkdir -p "$dir"
	hookroute_config "$dir/rules.yaml" "sqlite:$dir/hookroute.db" "$HR_PORT" "$HR_ADMIN_PORT"
	"$HR" check -c "$dir/rules.yaml" >&2 || return 1
	start_sink "ladder-sqlite-sink-$step" || return 1
	start "ladder-sqlite-$step" "$SERVER_CPU" "$HR" serve -c "$dir/rules.yaml" --log-level warn --log-format text
	SUT_PIDS=$STARTED
	wait_ready "http://127.0.0.1:$HR_PORT/readyz" "$STARTED" || return 1
	URLS="http://127.0.0.1:$HR_PORT/hooks/salesiq"
}

# pg_url DB: BENCH_POSTGRES with its database name replaced by DB.
pg_url() {
	local base=${BENCH_POSTGRES%%\?*}
	local query=${BENCH_POSTGRES#"$base"}
	printf '%s/%s%s' "${base%/*}" "$1" "$query"
}

up_pg2() {
	local step=$1 dir=$WORK/ladder-pg2-$1 n port admin pids=""
	mkdir -p "$dir"
	PG_DB="hookroute_bench_$$_$step"
	psql "$BENCH_POSTGRES" -qAt -c "CREATE DATABASE $PG_DB" >/dev/null || {
		PG_DB=""
		return 1
	}
	start_sink "ladder-pg2-sink-$step" || return 1
	URLS=""
	for n in 1 2; do
		port=$HR_PORT admin=$HR_ADMIN_PORT
		if ((n == 2)); then
			port=$HR2_PORT admin=$HR2_ADMIN_PORT
		fi
		hookroute_config "$dir/rules-$n.yaml" "$(pg_url "$PG_DB")" "$port" "$admin"
		start "ladder-pg2-$step-$n" "$SERVER_CPU" "$HR" serve -c "$dir/rules-$n.yaml" --log-level warn --log-format text
		pids+=${pids:+,}$STARTED
		SUT_PIDS=$pids
		wait_ready "http://127.0.0.1:$port/readyz" "$STARTED" || return 1
		URLS+=${URLS:+,}http://127.0.0.1:$port/hooks/salesiq
	done
}

up_benthos() {
	local step=$1
	sed -e "s|__HTTP_ADDRESS__|127.0.0.1:$PEER_HTTP_PORT|" \
		-e "s|__INPUT_ADDRESS__|127.0.0.1:$PEER_PORT|" \
		-e "s|__SINK_URL__|http://127.0.0.1:$SINK_PORT/deliver|" \
		"$ROOT/bench/peer/config.yaml" >"$WORK/peer-$step.yaml"
	if grep -q '__[A-Z_]*__' "$WORK/peer-$step.yaml"; then
		log "bench/peer/config.yaml has a placeholder this script does not fill in"
		return 1
	fi
	start_sink "ladder-benthos-sink-$step" || return 1
	start "ladder-benthos-$step" "$SERVER_CPU" "$PEER_BIN" -c "$WORK/peer-$step.yaml"
	SUT_PIDS=$STARTED
	wait_ready "http://127.0.0.1:$PEER_HTTP_PORT/ready" "$STARTED" || return 1
	URLS="http://127.0.0.1:$PEER_PORT/hooks/salesiq"
}

# ladder SYSTEM LABEL: the steps of one system, up to the first that fails.
ladder() {
	local sys=$1 label=$2 rate=$LADDER_START step=0 rc
	while awk -v r="$rate" -v m="$LADDER_MAX" 'BEGIN { exit !(r <= m) }'; do
		step=$((step + 1))
		ensure_pool "$rate"
		log "ladder $label: step $step, $rate events/s offered"
		if ! "up_$sys" "$step"; then
			log "ladder $label: could not start the system; its ladder ends here"
			tail -n 5 "$WORK"/ladder-"$sys"-*"$step"*.log >&2 2>/dev/null || true
			down
			return 1
		fi
		rc=0
		ladder_ingest "$label" "$rate" "$URLS" "$SUT_PIDS" || rc=$?
		down
		case $rc in
		0) ;;
		1)
			log "ladder $label: $rate events/s did not hold; the ladder stops"
			return 0
			;;
		*) return 1 ;;
		esac
		rate=$(awk -v r="$rate" -v f="$LADDER_FACTOR" 'BEGIN { printf "%d", r * f + 0.5 }')
	done
	log "ladder $label: every step up to LADDER_MAX=$LADDER_MAX held"
}

LADDER_LABELS=()
for sys in $LADDER_SYSTEMS; do
	case $sys in
	sqlite)
		ladder sqlite hookroute-sqlite || log "ladder hookroute-sqlite broke off"
		LADDER_LABELS+=(hookroute-sqlite)
		;;
	pg2)
		if [[ -z $BENCH_POSTGRES ]]; then
			log "ladder: no BENCH_POSTGRES, so no PostgreSQL ×2 system"
			continue
		fi
		if ! command -v psql >/dev/null || ! psql "$BENCH_POSTGRES" -qAt -c 'SELECT 1' >/dev/null; then
			log "ladder: psql cannot reach BENCH_POSTGRES; no PostgreSQL ×2 system"
			continue
		fi
		ladder pg2 hookroute-pg-x2 || log "ladder hookroute-pg-x2 broke off"
		LADDER_LABELS+=(hookroute-pg-x2)
		;;
	benthos)
		if [[ -z ${PEER_BIN:-} ]]; then
			log "building the Benthos peer (bench/peer; the first build downloads its modules)"
			if (cd "$ROOT/bench/peer" && go build -o "$WORK/benthos-peer" .); then
				PEER_BIN=$WORK/benthos-peer
			else
				log "ladder: the peer did not build; no Benthos system"
				continue
			fi
		fi
		ladder benthos benthos || log "ladder benthos broke off"
		LADDER_LABELS+=(benthos)
		;;
	*)
		log "ladder: unknown system $sys (sqlite, pg2, benthos)"
		;;
	esac
done

BODY_BYTES=$(grep -o '"body_bytes":[0-9]*' "$LADDER_RESULTS" | head -n1 | cut -d: -f2)
{
	printf '{"meta":{'
	machine_meta
	printf '"pinning":%s,' "$(jstr "$PINNING${PIN:+; PostgreSQL ×2: both replicas on CPU $SERVER_CPU, PostgreSQL unpinned}")"
	printf '"steps":%s,' "$(jstr "open loop, ×$LADDER_FACTOR from $LADDER_START/s up to $LADDER_MAX/s, $LADDER_STEP_DURATION measured after $LADDER_WARMUP warm-up, at most $LADDER_MAX_INFLIGHT in flight, ${BODY_BYTES:-?}-byte signed SalesIQ bodies, each step on a fresh store and sink")"
	printf '"holds when":%s,' "$(jstr "no non-2xx or error, p99 from scheduled time < $LADDER_MAX_P99, backlog at the window's end ≤ $LADDER_MAX_BACKLOG of the offered rate")"
	printf '"hookroute sink concurrency":%s' "$(jstr "${SINK_CONCURRENCY:-hookroute default (defaults.concurrency not set)}")"
	printf '}}\n'
} >"$WORK/ladder-meta.jsonl"
cat "$WORK/ladder-meta.jsonl" "$LADDER_RESULTS" >"$WORK/ladder-report.jsonl"

echo
echo "## hookroute ladder ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo
"$HL" ladder --ratio hookroute-sqlite/benthos --ratio hookroute-pg-x2/hookroute-sqlite "$WORK/ladder-report.jsonl"
