// Command hookload measures hookroute's ingest and end-to-end performance
// against baselines measured on the same machine in the same run. Only the
// ratios between numbers from one run mean much: absolute numbers move with
// the machine and its neighbours (see the performance reference).
//
// Usage:
//
//	hookload ingest   --url URL (--key PRIVATE.pem | --pool FILE) --concurrency N --duration D
//	                  [--unique] [--pid PID] [--sink-stats URL] [--json] [--label L]
//	hookload ingest   --url URL[,URL...] (--key PRIVATE.pem | --pool FILE) --rate R --duration D
//	                  [--max-inflight N] [--sink-stats URL] [--max-p99 D] [--max-backlog D] [--pid PID[,PID...]]
//	hookload baseline --listen ADDR --mode bare|verify [--pubkey PUBLIC.pem]
//	hookload sink     --listen ADDR [--window 1s]
//	hookload pool     --key PRIVATE.pem --n N --out FILE [--append --salt S]
//	hookload fsync    --dir DIR [--n 500]
//	hookload report   RESULTS.jsonl
//	hookload ladder   [--ratio A/B]... RESULTS.jsonl
//
// ingest runs N closed-loop senders (each waits for its answer before it
// sends again) over one keep-alive HTTP client, each POSTing a ~1.5 KB Zoho
// SalesIQ conversation.rated body with a sad rating, signed as SalesIQ signs
// it: base64 of an RSA-SHA256 PKCS#1 v1.5 signature in x-siqsignature. The
// bodies are signed before the timed run (a pool), so that signing is not on
// the load generator's hot path. With --unique (the default) every request
// carries a distinct body (entity_id and event_time differ), so the router
// never sees a duplicate; if the run needs more bodies than the pool holds,
// the run stops and hookload fails, telling the pool size to use. With
// --unique=false the pool is cycled (fine for the baselines, which keep no
// state). A warm-up (--warmup, default 1s) precedes the measured window and
// is not counted.
//
// It reports requests, non-2xx answers by status, transport errors,
// events/s (2xx answers per second), the p50/p90/p99/max acknowledgement
// latency (request sent to answer read), and with --pid the server's CPU
// time per request: the utime+stime delta of /proc/PID/stat over the
// measured window, in clock ticks converted with `getconf CLK_TCK` (100 Hz,
// the Linux default, is assumed if getconf fails; the output says which).
// The load generator's own CPU use is reported too, to show when a result is
// bound by the generator rather than the server. With --sink-stats (the
// /stats URL of a hookload sink that the router delivers to), it also
// reports deliveries/s at the sink during the measured window and, after
// waiting for the backlog to drain, the end-to-end rate: unique deliveries
// divided by the time from the first acknowledgement to the last delivery.
//
// With --rate, ingest runs an open loop instead: requests are due at fixed
// intervals of 1/R, whether or not earlier ones were answered, and each
// one's latency runs from the time it was due, not from the time it left,
// so that a server that falls behind shows it as latency rather than as a
// lower offered rate (coordinated omission). Up to --max-inflight requests
// are in flight at once; a request due when all are taken waits for one and
// counts as late, its latency still running from its due time. Several
// comma-separated URLs take the requests in turn (replicas). It reports the
// offered and the achieved rate (2xx answers received in the window per
// second), non-2xx answers and transport errors, and the p50/p90/p99/max
// latency from the scheduled time; with --sink-stats, the backlog at the
// window's end (deliveries announced by 2xx answers so far minus distinct
// deliveries at the sink by then) and the delivery lag: each request carries
// its scheduled time in X-Hookload-Sched, and the sink records, for each
// distinct delivery that brings it back (as a header, or inside the body
// hookroute delivers), its arrival minus that time. The run "holds" when it
// had no non-2xx answer and no error, a p99 under --max-p99 and a backlog
// of at most --max-backlog worth of the offered rate; bench/run.sh's ladder
// phase raises the rate until a step does not hold.
//
// baseline serves what a router cannot beat: "bare" reads the body (capped
// at 1 MiB, as the router's default max_body) and answers 202; "verify" also
// verifies x-siqsignature with RSA-2048 PKCS#1 v1.5, standard library only.
//
// sink answers 200 to every POST, counts requests and distinct
// Idempotency-Key values, prints deliveries/s every --window, and serves
// GET /stats as JSON {total, unique, first_at, last_at, lagged} and
// GET /lag?from=N&to=M, the delivery lags of stamped distinct deliveries
// N to M (in arrival order) as {n, lag_ms}.
//
// pool pre-signs N bodies into FILE, using every CPU, so that several
// ingest runs (and their pinned load generators) share one signing pass;
// with --append it grows FILE to N bodies, signing only the new ones.
// fsync times 4 KiB write+fdatasync pairs in DIR (the file system the store
// lives on). report turns the JSON lines written by ingest --json (and the
// meta lines bench/run.sh adds) into the markdown table of bench/run.sh;
// ladder does the same for open-loop results, one table per label, and
// each label's sustained rate.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: hookload COMMAND [flags]

commands:
  ingest    signed SalesIQ load against a URL: closed loop, or open loop with --rate
  baseline  reference server: bare (read body, 202) or verify (+ RSA-2048 verify)
  sink      HTTP sink that counts deliveries (GET /stats)
  pool      pre-sign a pool of bodies into a file
  fsync     time write+fdatasync on a directory's file system
  report    print the markdown table from ingest --json result lines
  ladder    print the ladder tables and sustained rates from open-loop result lines

Run "hookload COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "ingest":
		return cmdIngest(ctx, args, stdout, stderr)
	case "baseline":
		return cmdBaseline(ctx, args, stderr)
	case "sink":
		return cmdSink(ctx, args, stderr)
	case "pool":
		return cmdPool(args, stdout, stderr)
	case "fsync":
		return cmdFsync(args, stdout, stderr)
	case "report":
		return cmdReport(args, stdout, stderr)
	case "ladder":
		return cmdLadder(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hookload: unknown command %q\n\n%s", cmd, usage)
	return 2
}
