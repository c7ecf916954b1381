package main

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
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
	// Lagged counts the distinct deliveries that carried a scheduled send
	// time (stampHeader), i.e. the delivery lags recorded so far.
	Lagged int64 `json:"lagged"`
}

// sinkCounter counts deliveries.
type sinkCounter struct {
	total atomic.Int64
	mu    sync.Mutex
	keys  map[string]struct{}
	first time.Time
	last  time.Time
	// lags holds, in arrival order, each distinct delivery's arrival minus
	// its scheduled send time, so that a reader can ask for the lags of a
	// window by two counts read at its edges.
	lags []time.Duration
}

func newSinkCounter() *sinkCounter { return &sinkCounter{keys: map[string]struct{}{}} }

func (c *sinkCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.stats())
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/lag" {
		from, err1 := strconv.Atoi(r.URL.Query().Get("from"))
		to, err2 := strconv.Atoi(r.URL.Query().Get("to"))
		if err1 != nil || err2 != nil {
			http.Error(w, "want /lag?from=N&to=M", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.lagSummary(from, to))
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		w.WriteHeader(http.StatusOK)
		return
	}
	// Read the whole body, as a real endpoint would, so the connection
	// stays reusable.
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	now := time.Now()
	key := r.Header.Get("Idempotency-Key")
	sched, stamped := deliveryStamp(r.Header, body)
	c.total.Add(1)
	c.mu.Lock()
	if c.first.IsZero() {
		c.first = now
	}
	c.last = now
	if key != "" {
		if _, seen := c.keys[key]; !seen {
			c.keys[key] = struct{}{}
			if stamped {
				c.lags = append(c.lags, now.Sub(sched))
			}
		}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// stampInBody is how stampHeader appears in the body hookroute's http sink
// delivers: the event's request headers, names lower-cased, as JSON.
var stampInBody = []byte(`"` + strings.ToLower(stampHeader) + `":"`)

// deliveryStamp finds the scheduled send time a delivery carries: in
// stampHeader (a pipeline that forwards request headers) or in the body (a
// router that delivers the event with its request headers).
func deliveryStamp(h http.Header, body []byte) (time.Time, bool) {
	v := h.Get(stampHeader)
	if v == "" {
		i := bytes.Index(body, stampInBody)
		if i < 0 {
			return time.Time{}, false
		}
		rest := body[i+len(stampInBody):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return time.Time{}, false
		}
		v = string(rest[:j])
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil || us <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// lagSummary summarises the delivery lags recorded between the from-th and
// the to-th stamped distinct delivery.
func (c *sinkCounter) lagSummary(from, to int) lagAnswer {
	c.mu.Lock()
	to = min(max(to, 0), len(c.lags))
	from = min(max(from, 0), to)
	ds := slices.Clone(c.lags[from:to])
	c.mu.Unlock()
	return lagAnswer{N: int64(len(ds)), Lag: latencies(ds)}
}

// lagAnswer is the sink's GET /lag answer.
type lagAnswer struct {
	N   int64     `json:"n"`
	Lag LatencyMS `json:"lag_ms"`
}

func (c *sinkCounter) stats() sinkStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sinkStats{Total: c.total.Load(), Unique: int64(len(c.keys)), FirstAt: c.first, LastAt: c.last, Lagged: int64(len(c.lags))}
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
