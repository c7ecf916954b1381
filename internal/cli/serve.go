package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/hookroute/hookroute/router/trial"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/postgres"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
	"github.com/hookroute/hookroute/sinks"
)

func cmdServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs, cfg := newFlags("serve", "", stderr)
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
	reload := func() (*rules.Runtime, error) {
		rt, err := trial.LoadFile(*cfg, reg)
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

// serve runs the router until ctx is done, then shuts down in order:
// stop taking webhooks (in-flight requests finish and commit), stop
// claiming and let attempts in flight finish, close the store.
func serve(ctx context.Context, rt *rules.Runtime, reload func() (*rules.Runtime, error), log *slog.Logger) error {
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

	servers, errc, err := listen(rt, r, reg, log)
	if err != nil {
		return err
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
	shutdown(time.Duration(rt.Config.Server.ShutdownTimeout), servers, stopWork, &wg, log)
	return serveErr
}

// listen opens the ingest listener and, when configured, the admin one,
// and serves them; a listener that fails later sends its error on the
// returned channel.
func listen(rt *rules.Runtime, r *dispatch.Router, reg *prometheus.Registry, log *slog.Logger) ([]*http.Server, <-chan error, error) {
	ingestLn, err := net.Listen("tcp", rt.Config.Server.Listen)
	if err != nil {
		return nil, nil, err
	}
	readTimeout := time.Duration(rt.Config.Server.ReadTimeout)
	ingest := dispatch.NewHTTPServer(rt.Config.Server.Listen, r.IngestHandler(), readTimeout)
	servers := []*http.Server{ingest}
	lns := []net.Listener{ingestLn}
	if a := rt.Config.Server.AdminListen; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			ingestLn.Close()
			return nil, nil, err
		}
		servers = append(servers, dispatch.NewHTTPServer(a, admin.Handler(r, reg), readTimeout))
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
	return servers, errc, nil
}

// shutdown stops the listeners, then the workers, within grace in all.
func shutdown(grace time.Duration, servers []*http.Server, stopWork func(), wg *sync.WaitGroup, log *slog.Logger) {
	log.Info("shutting down")
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
}
