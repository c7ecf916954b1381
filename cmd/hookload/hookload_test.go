package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := []byte("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0\n")
	got, err := parseStatTicks(line)
	if err != nil {
		t.Fatal(err)
	}
	if got != 325 {
		t.Fatalf("got %d ticks, want 250+75", got)
	}
	if _, err := parseStatTicks([]byte("garbage")); err == nil {
		t.Fatal("no error for a line without ')'")
	}
	if _, err := cpuTicks("self"); err != nil {
		t.Fatal(err)
	}
}

func testKeys(t *testing.T) (*rsa.PrivateKey, []byte, []byte) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
}

func TestPoolFileAndVerifyBaseline(t *testing.T) {
	_, privPEM, pubPEM := testKeys(t)
	k, err := parsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := parsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := buildPool(k, 3, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pool.bin")
	if err := writePool(path, pool); err != nil {
		t.Fatal(err)
	}
	back, err := readPool(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || !bytes.Equal(back[2].Body, pool[2].Body) || back[2].Sig != pool[2].Sig {
		t.Fatal("pool file did not round-trip")
	}

	h := baselineHandler(pub)
	send := func(body []byte, sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/hooks/salesiq", bytes.NewReader(body))
		req.Header.Set("x-siqsignature", sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if c := send(back[0].Body, back[0].Sig); c != http.StatusAccepted {
		t.Fatalf("signed body: %d, want 202", c)
	}
	if c := send(back[1].Body, back[0].Sig); c != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d, want 401", c)
	}
	if c := send(bytes.Repeat([]byte("x"), maxBody+1), back[0].Sig); c != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", c)
	}
	if c := baselineCode(t, baselineHandler(nil), back[1].Body); c != http.StatusAccepted {
		t.Fatalf("bare: %d, want 202", c)
	}
}

func baselineCode(t *testing.T, h http.Handler, body []byte) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	return rec.Code
}

func TestSinkCounter(t *testing.T) {
	c := newSinkCounter()
	for _, key := range []string{"d_1", "d_2", "d_1", ""} {
		req := httptest.NewRequest(http.MethodPost, "/deliver", strings.NewReader("{}"))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST: %d", rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	var st sinkStats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Total != 4 || st.Unique != 2 || st.FirstAt.IsZero() || st.LastAt.Before(st.FirstAt) {
		t.Fatalf("stats %+v, want total 4, unique 2, first ≤ last", st)
	}
}

func TestLatenciesAndAnnounced(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := latencies(ds)
	if l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 {
		t.Fatalf("latencies %+v", l)
	}
	if n := announcedDeliveries([]byte(`{"id":"x","matched":["a","b"],"deliveries":3}`)); n != 3 {
		t.Fatalf("announced %d, want 3", n)
	}
	if n := announcedDeliveries([]byte(`{"ok":true}`)); n != 1 {
		t.Fatalf("announced %d without the field, want 1", n)
	}
}

// TestReportPairsRounds: with rounds, each hookroute result is compared
// with its own round's baselines, and each target gets a median row.
func TestReportPairsRounds(t *testing.T) {
	res := func(label string, round int, eps, cpu float64) *Result {
		return &Result{Label: label, Round: round, URL: "http://x", Concurrency: 32, EventsPS: eps, ServerCPUUsPerReq: cpu,
			Latency: LatencyMS{P99: 10 * float64(round)}}
	}
	hr := func(round int, eps, e2e float64) *Result {
		r := res("hookroute", round, eps, 150)
		r.E2E = &E2E{RatePerS: e2e, Drained: true, ServerCPUUsPerEvent: 300}
		return r
	}
	results := []*Result{
		res("bare", 1, 40000, 20), res("verify", 1, 20000, 60), hr(1, 7000, 3600),
		res("bare", 2, 30000, 30), res("verify", 2, 16000, 60), hr(2, 8000, 3600),
		res("bare", 3, 36000, 24), res("verify", 3, 20000, 60), hr(3, 9000, 4000),
	}
	var b bytes.Buffer
	printReport(&b, nil, results)
	out := b.String()
	for _, want := range []string{
		"| ingest ≥ 0.40 × verify baseline | 32 (round 1) | 0.35 | **no** |", // 7000/20000
		"| ingest ≥ 0.40 × verify baseline | 32 (round 2) | 0.50 | yes |",    // 8000/16000, not /20000
		"| ingest ≥ 0.40 × verify baseline | 32 (round 3) | 0.45 | yes |",    // 9000/20000
		"| ingest ≥ 0.40 × verify baseline | 32, median of 3 rounds | 0.450 | yes | 0.400 | yes | |",
		"| end-to-end ≥ 0.10 × bare baseline | 32 (round 2) | 0.120 | yes |", // 3600/30000
		"| end-to-end ≥ 0.10 × bare baseline | 32, median of 3 rounds | 0.111 | yes | 0.080 | **no** | |",
		"| p99 ack < 50 ms | 32, median of 3 rounds | 20.00 ms | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestPoolAppend: growing a pool file signs the same salted sequence as
// signing it whole, so a grown pool has no duplicate.
func TestPoolAppend(t *testing.T) {
	_, privPEM, _ := testKeys(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "private.pem")
	if err := os.WriteFile(key, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := func(out string, n int, grow bool) {
		t.Helper()
		args := []string{"--key", key, "--n", strconv.Itoa(n), "--out", out, "--salt", "9"}
		if grow {
			args = append(args, "--append")
		}
		var stderr bytes.Buffer
		if rc := cmdPool(args, io.Discard, &stderr); rc != 0 {
			t.Fatalf("pool %v: exit %d: %s", args, rc, stderr.String())
		}
	}
	grown, whole := filepath.Join(dir, "grown.bin"), filepath.Join(dir, "whole.bin")
	pool(grown, 2, true)
	pool(grown, 5, true)
	pool(grown, 3, true) // already big enough: untouched
	pool(whole, 5, false)
	a, errA := os.ReadFile(grown)
	b, errB := os.ReadFile(whole)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("grown pool differs from the whole one (%v, %v)", errA, errB)
	}
	back, err := readPool(grown)
	if err != nil || len(back) != 5 {
		t.Fatalf("read back %d bodies, %v", len(back), err)
	}
}
