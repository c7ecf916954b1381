// Command hookroute receives signed webhooks (Zoho SalesIQ and others),
// routes them by YAML rules written in expr, and delivers them durably to
// Slack, HTTP endpoints and helpdesks. main wires the CLI only; the work is
// in package router and package sinks.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hookroute/hookroute/internal/admincli"
	"github.com/hookroute/hookroute/internal/clikeys"
	"github.com/hookroute/hookroute/internal/clitrial"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/postgres"
	"github.com/hookroute/hookroute/router/sqlite"
	"github.com/hookroute/hookroute/sinks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: hookroute COMMAND [flags]

commands:
  serve     run the router (ingest, delivery workers, /metrics)
  check     validate the config: every expression and template compiled, tests: run
  trial     show which rules an event matches and why not, and the requests sinks would get
  test      run rule test files (events with the rules and routes they must hit)
  send      sign a payload as a source would and post it
  deliveries list|show|replay   the delivery log and dead letters (admin API)
  keys generate|list|delete     outbound signing keys of secured http sinks (admin API)
  verify    check an x-siqsignature over a file with a public key (for receivers)
  version   print version and build info

Every command takes -c/--config FILE (default rules.yaml, or $HOOKROUTE_CONFIG).
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, args, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "send":
		return cmdSend(ctx, args, stdout, stderr)
	case "deliveries":
		return admincli.Deliveries(ctx, args, os.Stdin, stdout, stderr)
	case "trial":
		return clitrial.Trial(ctx, args, stdout, stderr)
	case "test":
		return clitrial.Test(ctx, args, stdout, stderr)
	case "keys":
		return clikeys.Keys(ctx, args, stdout, stderr)
	case "verify":
		return clikeys.Verify(ctx, args, stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hookroute: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func versionString() string {
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	return fmt.Sprintf("hookroute %s%s", v, rev)
}

// newFlags returns a flag set with -c/--config.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("HOOKROUTE_CONFIG")
	if def == "" {
		def = "rules.yaml"
	}
	cfg := fs.String("config", def, "config `file`")
	fs.StringVar(cfg, "c", def, "config `file` (shorthand)")
	return fs, cfg
}

func loadConfig(path string, reg *sinks.Registry, stderr io.Writer) (*dispatch.Runtime, bool) {
	rt, err := dispatch.LoadFile(path, reg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	return rt, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("check", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rt, ok := loadConfig(*cfg, sinks.NewRegistry(), stderr)
	if !ok {
		return 1
	}
	for _, w := range rt.Warnings {
		fmt.Fprintf(stdout, "%s: warning: %s\n", *cfg, w)
	}
	fmt.Fprintf(stdout, "%s: ok: %d sources, %d sinks, %d rules\n", *cfg, len(rt.Sources), len(rt.Sinks), len(rt.Rules))
	return 0
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs, cfg := newFlags("serve", stderr)
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute:", err)
		return 2
	}
	// One registry for the process, so that what sinks share (Slack's
	// per-channel pacing, the HTTP connection pool) outlives reloads.
	reg := sinks.NewRegistry()
	rt, ok := loadConfig(*cfg, reg, stderr)
	if !ok {
		return 1
	}
	for _, w := range rt.Warnings {
		log.Warn(w)
	}
	reg.SetEgressAllow(egressAllow(rt))
	reload := func() (*dispatch.Runtime, error) {
		rt, err := dispatch.LoadFile(*cfg, reg)
		if err == nil {
			reg.SetEgressAllow(egressAllow(rt))
		}
		return rt, err
	}
	if err := serve(ctx, rt, reload, log); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// egressAllow reads the config's egress.allow (validated at load).
func egressAllow(rt *dispatch.Runtime) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range rt.Config.Egress.Allow {
		if p, err := netip.ParsePrefix(a); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid --log-format %q (want json or text)", format)
}

func openStore(ctx context.Context, url string, log *slog.Logger) (router.Store, error) {
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		s, err := sqlite.Open(ctx, path, sqlite.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		// One process owns a SQLite file, so leases left by a crashed
		// predecessor are released now rather than after they run out.
		// (On PostgreSQL other replicas' leases are live: never there.)
		if err := s.Release(ctx, ""); err != nil {
			s.Close()
			return nil, fmt.Errorf("release stale leases: %w", err)
		}
		return s, nil
	}
	return postgres.Open(ctx, url, postgres.Options{Logger: log})
}

// serve runs the router until ctx is done, then shuts down in order:
// stop taking webhooks (in-flight requests finish and commit), stop
// claiming and let attempts in flight finish, close the store.
// Garbage collector defaults for serve, each unless its environment
// variable is set. The live heap is small (tens of MiB) and every event
// allocates its decoded view and its requests, so with Go's default
// GOGC=100 the collector ran every few milliseconds under load and took a
// sixth of the CPU. 400 collects a quarter as often; the memory limit makes
// it collect early rather than let the heap pass 128 MiB.
const (
	serveGOGC     = 400
	serveMemLimit = 128 << 20
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGOGC)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemLimit)
	}
}

func serve(ctx context.Context, rt *dispatch.Runtime, reload func() (*dispatch.Runtime, error), log *slog.Logger) error {
	tuneGC()
	store, err := openStore(ctx, rt.Config.Store.URL, log)
	if err != nil {
		return err
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	masterKey, err := dispatch.ParseMasterKey(os.Getenv("HOOKROUTE_MASTER_KEY"))
	if err != nil {
		return err
	}
	r := dispatch.New(rt, store, dispatch.Options{Logger: log, Metrics: dispatch.NewMetrics(reg), Reload: reload, MasterKey: masterKey, Capture: sinks.TrialCapturer})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			_ = r.Reload() // logged and counted by Reload
		}
	}()

	ingestLn, err := net.Listen("tcp", rt.Config.Server.Listen)
	if err != nil {
		return err
	}
	readTimeout := time.Duration(rt.Config.Server.ReadTimeout)
	ingest := dispatch.NewHTTPServer(rt.Config.Server.Listen, r.IngestHandler(), readTimeout)
	servers := []*http.Server{ingest}
	lns := []net.Listener{ingestLn}
	if a := rt.Config.Server.AdminListen; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			ingestLn.Close()
			return err
		}
		servers = append(servers, dispatch.NewHTTPServer(a, r.AdminHandler(reg), readTimeout))
		lns = append(lns, ln)
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		log.Info("listening", "addr", lns[i].Addr().String(), "role", map[int]string{0: "ingest", 1: "admin"}[i])
		go func() {
			if err := s.Serve(lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.Run(workCtx)
	}()
	log.Info("hookroute started", "config", rt.File, "sources", len(rt.Sources), "sinks", len(rt.Sinks), "rules", len(rt.Rules))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("shutting down")
	grace := time.Duration(rt.Config.Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
	}
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		log.Warn("shutdown grace period over; unfinished attempts will be retried after their lease")
	}
	log.Info("stopped")
	return serveErr
}

func cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("send", stderr)
	source := fs.String("source", "", "source `name` in the config")
	keyFile := fs.String("key", "", "private key `PEM` to sign with (salesiq sources)")
	url := fs.String("url", "", "target `URL` (default: the source path on server.listen)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *source == "" {
		fmt.Fprintln(stderr, "usage: hookroute send --source NAME [--key PRIVATE.pem] [--url URL] FILE.json")
		return 2
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	rt, ok := loadConfig(*cfg, sinks.NewRegistry(), stderr)
	if !ok {
		return 1
	}
	src, ok := rt.Source(*source)
	if !ok {
		fmt.Fprintf(stderr, "hookroute send: no source %q in %s\n", *source, *cfg)
		return 1
	}
	target := *url
	if target == "" {
		host, port, _ := net.SplitHostPort(rt.Config.Server.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		target = "http://" + net.JoinHostPort(host, port) + src.Path
	}
	h, err := src.SendHeaders(*keyFile, body)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s\n", resp.Status, bytes.TrimSpace(out))
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}
