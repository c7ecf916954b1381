#!/usr/bin/env bash
# bench/run.sh — measure hookroute's ingest and end-to-end throughput as
# ratios against baselines measured in the same run, on this machine.
#
#   bench/run.sh            (from anywhere; about 3–4 minutes)
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
#   4. prints markdown tables with absolute numbers and ratios to (a) and (b).
#
# The servers under test run on CPU 1 and the load generator and the sink on
# CPU 0 (taskset), so that the server's core is its own; without taskset or
# with one CPU, nothing is pinned and the table says so.
#
# Environment knobs: DURATION (10s), WARMUP (1s), CONCURRENCIES ("32 128"),
# ROUNDS (1: run each concurrency's three cases this many times in a row,
# each round's ratios against its own baselines, plus their medians),
# POOL (160000 bodies, enough for 10 s at 128 senders here; grown and retried
# automatically if a run needs more),
# SINK_CONCURRENCY (unset: hookroute's default), BASE_PORT (18180),
# DRAIN_TIMEOUT (120s), KEEP (1: keep the temp dir), PIN_CPUS (0: pin
# nothing, as docs/performance.md's reference figures were taken: load generator
# and servers on the same cores).
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
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
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
for p in $BARE_PORT $VERIFY_PORT $HR_PORT $HR_ADMIN_PORT $SINK_PORT; do
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
(cd "$ROOT" && go build -o "$WORK/hookroute" . && go build -o "$WORK/hookload" ./cmd/hookload)
HL=$WORK/hookload
HR=$WORK/hookroute

log "generating a throwaway RSA-2048 key pair"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/private.pem" 2>/dev/null
openssl pkey -in "$WORK/private.pem" -pubout -out "$WORK/public.pem" 2>/dev/null

# make_pool N: sign N distinct bodies into $WORK/pool.bin (all CPUs).
make_pool() {
	log "pre-signing $1 bodies (RSA-2048, every CPU; not part of any measurement)"
	"$HL" pool --key "$WORK/private.pem" --n "$1" --out "$WORK/pool.bin" >&2
	POOL=$1
}
make_pool "$POOL"

log "fsync probe"
FSYNC=$("$HL" fsync --dir "$WORK" --n 500)
log "$FSYNC"

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

# (c) and (d): hookroute, a fresh store and sink for each run.
hookroute_run() {
	local c=$1 dir=$WORK/hookroute-$1
	rm -rf "$dir"
	mkdir -p "$dir"
	{
		cat <<EOF
server:
  listen: "127.0.0.1:$HR_PORT"
  admin_listen: "127.0.0.1:$HR_ADMIN_PORT"
store:
  url: "sqlite:$dir/hookroute.db"
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
	} >"$dir/rules.yaml"

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

# jstr S: S as a JSON string (no control characters expected).
jstr() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}
GOVERSION=$(cd "$ROOT" && go version)
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if (cd "$ROOT" && git status --porcelain 2>/dev/null | grep -q .); then
	REV="$REV (working tree modified)"
fi
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
BODY_BYTES=$(grep -o '"body_bytes":[0-9]*' "$RESULTS" | head -n1 | cut -d: -f2)
{
	printf '{"meta":{'
	printf '"go":%s,' "$(jstr "$GOVERSION")"
	printf '"nproc":%s,' "$(jstr "$NPROC")"
	printf '"cpu":%s,' "$(jstr "${CPU_MODEL:-unknown}")"
	printf '"kernel":%s,' "$(jstr "$(uname -r)")"
	printf '"hookroute":%s,' "$(jstr "$REV")"
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
