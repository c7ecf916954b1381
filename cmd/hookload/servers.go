package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody is the router's default server.max_body.
const maxBody = 1 << 20

// newServer uses the timeouts and limits of hookroute's listeners
// (router.NewHTTPServer), so the baselines pay what the router pays.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second, // server.read_timeout's default
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// serve runs srv on addr until ctx is done.
func serve(ctx context.Context, srv *http.Server, addr string, stderr io.Writer, what string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "hookload %s: %v\n", what, err)
		return 1
	}
	fmt.Fprintf(stderr, "hookload %s: listening on %s\n", what, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return 0
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return 0
		}
		fmt.Fprintf(stderr, "hookload %s: %v\n", what, err)
		return 1
	}
}

// acceptedReply is about the size of the router's 202 answer.
var acceptedReply = []byte(`{"id":"conversation.rated:40526000001808033:1567065865617","matched":["sad-chat"],"deliveries":1}` + "\n")

func cmdBaseline(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:18090", "listen `address`")
	mode := fs.String("mode", "bare", "bare (read body, 202) or verify (+ RSA signature check)")
	pubFile := fs.String("pubkey", "", "RSA public key `PEM` that x-siqsignature must verify with (verify mode)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var key *rsa.PublicKey
	switch *mode {
	case "bare":
	case "verify":
		if *pubFile == "" {
			fmt.Fprintln(stderr, "hookload baseline: --mode verify needs --pubkey PUBLIC.pem")
			return 2
		}
		data, err := os.ReadFile(*pubFile)
		if err != nil {
			fmt.Fprintln(stderr, "hookload baseline:", err)
			return 1
		}
		if key, err = parsePublicKey(data); err != nil {
			fmt.Fprintln(stderr, "hookload baseline:", *pubFile+":", err)
			return 1
		}
	default:
		fmt.Fprintf(stderr, "hookload baseline: --mode %q: want bare or verify\n", *mode)
		return 2
	}
	return serve(ctx, newServer(baselineHandler(key)), *listen, stderr, "baseline "+*mode)
}

// baselineHandler reads the body with the router's cap and answers 202;
// with a key, only after x-siqsignature verified (401 otherwise).
func baselineHandler(key *rsa.PublicKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusOK) // HEAD/GET probes, as the router answers them
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "could not read body", http.StatusBadRequest)
			return
		}
		if key != nil && !verifySIQ(key, r.Header.Get("x-siqsignature"), body) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write(acceptedReply)
	})
}

// verifySIQ checks a SalesIQ signature: base64 RSA PKCS#1 v1.5 over
// SHA-256 of the raw body.
func verifySIQ(key *rsa.PublicKey, header string, body []byte) bool {
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil || len(sig) != key.Size() {
		return false
	}
	digest := sha256.Sum256(body)
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) == nil
}

// sinkStats is the sink's GET /stats answer.
type sinkStats struct {
	Total   int64     `json:"total"`
	Unique  int64     `json:"unique"`
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
}

// sinkCounter counts deliveries.
type sinkCounter struct {
	total atomic.Int64
	mu    sync.Mutex
	keys  map[string]struct{}
	first time.Time
	last  time.Time
}

func newSinkCounter() *sinkCounter { return &sinkCounter{keys: map[string]struct{}{}} }

func (c *sinkCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.stats())
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		w.WriteHeader(http.StatusOK)
		return
	}
	// Read the whole body, as a real endpoint would, so the connection
	// stays reusable.
	io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody))
	now := time.Now()
	key := r.Header.Get("Idempotency-Key")
	c.total.Add(1)
	c.mu.Lock()
	if c.first.IsZero() {
		c.first = now
	}
	c.last = now
	if key != "" {
		c.keys[key] = struct{}{}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (c *sinkCounter) stats() sinkStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sinkStats{Total: c.total.Load(), Unique: int64(len(c.keys)), FirstAt: c.first, LastAt: c.last}
}

func cmdSink(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:18099", "listen `address`")
	window := fs.Duration("window", time.Second, "print deliveries/s over this window (0: never)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := newSinkCounter()
	if *window > 0 {
		go func() {
			t := time.NewTicker(*window)
			defer t.Stop()
			var last int64
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				st := c.stats()
				if st.Total != last {
					fmt.Fprintf(stderr, "hookload sink: %.0f deliveries/s (total %d, unique %d)\n",
						float64(st.Total-last)/window.Seconds(), st.Total, st.Unique)
					last = st.Total
				}
			}
		}()
	}
	return serve(ctx, newServer(c), *listen, stderr, "sink")
}
