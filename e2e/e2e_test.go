package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/hookroute/hookroute/router/verify"
)

// binPath is the hookroute binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookroute-e2e")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "hookroute")
	build := exec.Command("go", "build", "-o", binPath, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building hookroute:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2eKey signs the test events; e2eOtherKey forges them.
var e2eKey, e2eOtherKey = mustKey(), mustKey()

func mustKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func publicPEM(t *testing.T, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// routerProc is a running hookroute binary.
type routerProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	ingest string // base URL
	admin  string // host:port
	db     string
	logs   *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRouter runs the binary on config (with {{DB}} filled in, and
// {{LISTEN}} and {{ADMIN}} as port 0 on two loopback addresses: the config
// may not name one listener twice), learns the ports it got
// from its "listening" log lines and waits until /readyz answers 200. A
// port picked here and handed over would be free only until some
// connection took it as its own port, and a router that then fails to
// listen fails the test for nothing.
func startRouter(t *testing.T, dir, config string, env []string) *routerProc {
	t.Helper()
	db := filepath.Join(dir, "hookroute.db")
	config = strings.NewReplacer("{{LISTEN}}", "127.0.0.1:0", "{{ADMIN}}", "127.0.0.2:0", "{{DB}}", db).Replace(config)
	cfgPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &routerProc{t: t, db: db, logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binPath, "serve", "-c", cfgPath)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("router output:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if p.ingest == "" {
			if addr := listeningOn(p.logs.String()); addr["ingest"] != "" && addr["admin"] != "" {
				p.ingest, p.admin = "http://"+addr["ingest"], addr["admin"]
			}
		} else if resp, err := http.Get(p.ingest + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup, which waits for the exit too
			t.Fatalf("router exited: %v\n%s", err, p.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("router not ready:\n%s", p.logs.String())
	return nil
}

// listeningOn reads the addresses of serve's "listening" log lines (JSON
// lines), by role.
func listeningOn(logs string) map[string]string {
	addr := map[string]string{}
	for _, line := range strings.Split(logs, "\n") {
		var l struct{ Msg, Addr, Role string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
			addr[l.Role] = l.Addr
		}
	}
	return addr
}

// post sends body to the source path, signed with key (nil: unsigned).
func (p *routerProc) post(path string, body []byte, key *rsa.PrivateKey) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.ingest+path, bytes.NewReader(body))
	if key != nil {
		sig, err := verify.SignSalesIQ(key, body)
		if err != nil {
			p.t.Fatal(err)
		}
		req.Header.Set("x-siqsignature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// query reads the router's SQLite file (WAL allows a reader beside it).
func (p *routerProc) query(q string, args ...any) int {
	p.t.Helper()
	db, err := sql.Open("sqlite", "file:"+p.db+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// salesiqEvent returns a SalesIQ conversation.rated body.
func salesiqEvent(entityID, rating, feedback string, attempt int) []byte {
	b, _ := json.Marshal(map[string]any{
		"entity_type": "conversation", "event": "conversation.rated", "entity_id": entityID,
		"org_id": "55778119", "app_id": json.Number("40526000000002040"), "attempt": attempt, "version": "1",
		"event_time": "1567065865617",
		"entity": map[string]any{
			"id": entityID, "status": "Ended", "rating": rating, "feedback": feedback,
			"owner":   map[string]any{"type": "operator", "id": "1", "name": "Patricia"},
			"visitor": map[string]any{"type": "contact", "id": "2", "name": "Tricia", "email_id": "tricia@zylker.com"},
		},
	})
	return b
}

// fakeSlack is a Slack Web API fake: form-encoded chat.postMessage, bearer
// token, ok:false errors, 5xx and 429 with Retry-After, scripted per
// channel.
type fakeSlack struct {
	mu       sync.Mutex
	script   map[string][]func(w http.ResponseWriter) // per channel, consumed in order
	posted   []url.Values                             // accepted messages
	requests map[string][]time.Time                   // every request per channel
}

func newFakeSlack() *fakeSlack {
	return &fakeSlack{script: map[string][]func(http.ResponseWriter){}, requests: map[string][]time.Time{}}
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/chat.postMessage" || r.Header.Get("Authorization") != "Bearer xoxb-test-token" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ch := r.PostForm.Get("channel")
	f.mu.Lock()
	f.requests[ch] = append(f.requests[ch], time.Now())
	var step func(http.ResponseWriter)
	if s := f.script[ch]; len(s) > 0 {
		step, f.script[ch] = s[0], s[1:]
	}
	if step == nil {
		f.posted = append(f.posted, r.PostForm)
	}
	f.mu.Unlock()
	if step != nil {
		step(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"1700000000.%06d"}`, len(f.posted))
}

func (f *fakeSlack) messages(channel string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, v := range f.posted {
		if v.Get("channel") == channel {
			out = append(out, v.Get("text"))
		}
	}
	return out
}

func (f *fakeSlack) requestTimes(channel string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.requests[channel]...)
}

func slackStatus(code int, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
	}
}

func slackError(code string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
	}
}

// fakeHTTPSink records every request's Idempotency-Key; while down it
// answers 503.
type fakeHTTPSink struct {
	mu   sync.Mutex
	down bool
	keys []string
	body [][]byte
}

func (f *fakeHTTPSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	f.body = append(f.body, b)
	w.WriteHeader(http.StatusOK)
}

func (f *fakeHTTPSink) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
}

func (f *fakeHTTPSink) received() ([]string, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...), append([][]byte(nil), f.body...)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const e2eConfig = `
server:
  listen: "{{LISTEN}}"
  admin_listen: "{{ADMIN}}"
  max_body: 64KiB
store:
  url: "sqlite:{{DB}}"
egress:
  allow: ["127.0.0.1/32"]   # the fakes listen on loopback
sources:
  - name: salesiq
    type: salesiq
    public_keys:
      - pem: ${TEST_PUBLIC_KEY}
sinks:
  - name: slack
    type: slack
    token: ${TEST_SLACK_TOKEN}
    channel: "#support"
    api_url: ${TEST_SLACK_URL}
    rate: 50
    retry: {max_attempts: 5, initial: 200ms, max_interval: 1s, multiplier: 2, jitter: 0.1}
  - name: audit
    type: http
    url: ${TEST_HTTP_URL}
    retry: {max_attempts: 20, initial: 100ms, max_interval: 500ms, multiplier: 2, jitter: 0.1}
rules:
  - name: sad-chat
    source: salesiq
    when: event == "conversation.rated" && chat.rating == "sad" && !(chat.feedback startsWith "route:")
    to:
      - sink: slack
        text: '{{ .visitor.name }} rated the chat sad: "{{ .chat.feedback }}"'
      - sink: audit
  - name: scripted
    source: salesiq
    when: chat.feedback startsWith "route:"
    to:
      - sink: slack
        channel: '{{ trimPrefix "route:" .chat.feedback }}'
        text: "scripted {{ .chat.id }}"
`

func TestEndToEnd(t *testing.T) {
	slack := newFakeSlack()
	slackSrv := httptest.NewServer(slack)
	defer slackSrv.Close()
	sink := &fakeHTTPSink{}
	sinkSrv := httptest.NewServer(sink)
	defer sinkSrv.Close()

	slack.script["#flaky"] = []func(http.ResponseWriter){slackStatus(500, ""), slackStatus(500, "")}
	slack.script["#gone"] = []func(http.ResponseWriter){slackError("channel_not_found")}
	slack.script["#busy"] = []func(http.ResponseWriter){slackStatus(429, "1")}

	dir := t.TempDir()
	p := startRouter(t, dir, e2eConfig, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey),
		"TEST_SLACK_TOKEN=xoxb-test-token",
		"TEST_SLACK_URL=" + slackSrv.URL + "/api/",
		"TEST_HTTP_URL=" + sinkSrv.URL + "/hook",
	})

	t.Run("forged and unsigned requests are refused and store nothing", func(t *testing.T) {
		body := salesiqEvent("9001", "1", "forged", 1)
		if code, _ := p.post("/hooks/salesiq", body, e2eOtherKey); code != 401 {
			t.Errorf("forged: status %d, want 401", code)
		}
		if code, _ := p.post("/hooks/salesiq", body, nil); code != 401 {
			t.Errorf("unsigned: status %d, want 401", code)
		}
		if n := p.query(`SELECT count(*) FROM events`); n != 0 {
			t.Errorf("%d events stored after forged requests, want 0", n)
		}
	})

	t.Run("method, path and size answers", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			body         []byte
			want         int
		}{
			{"HEAD", "/hooks/salesiq", nil, 200},
			{"GET", "/hooks/salesiq", nil, 200},
			{"PUT", "/hooks/salesiq", nil, 405},
			{"POST", "/hooks/nope", nil, 404},
			{"POST", "/hooks/salesiq", bytes.Repeat([]byte("x"), 65<<10), 413},
		} {
			req, _ := http.NewRequest(c.method, p.ingest+c.path, bytes.NewReader(c.body))
			if c.want == 413 {
				req.ContentLength = -1 // chunked: the cap must hold without a length
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s %s: status %d, want %d", c.method, c.path, resp.StatusCode, c.want)
			}
		}
	})

	t.Run("a sad rating reaches Slack once; a re-sent one is a duplicate", func(t *testing.T) {
		code, resp := p.post("/hooks/salesiq", salesiqEvent("1001", "1", "No answer <about> refunds & returns", 1), e2eKey)
		if code != 202 || !strings.Contains(resp, `"matched":["sad-chat"]`) || !strings.Contains(resp, `"deliveries":2`) {
			t.Fatalf("first post: %d %s", code, resp)
		}
		code, resp = p.post("/hooks/salesiq", salesiqEvent("1001", "1", "No answer <about> refunds & returns", 2), e2eKey)
		if code != 200 {
			t.Fatalf("re-sent (attempt 2): %d %s, want 200", code, resp)
		}
		eventually(t, 10*time.Second, "the Slack message", func() bool { return len(slack.messages("#support")) == 1 })
		eventually(t, 10*time.Second, "the http delivery", func() bool { k, _ := sink.received(); return len(k) == 1 })
		want := `Tricia rated the chat sad: "No answer &lt;about&gt; refunds &amp; returns"`
		if got := slack.messages("#support")[0]; got != want {
			t.Errorf("Slack text %q, want %q", got, want)
		}
		keys, bodies := sink.received()
		if !strings.HasPrefix(keys[0], "d_") || !bytes.Contains(bodies[0], []byte(`"app_id":"40526000000002040"`)) {
			t.Errorf("http delivery key %q body %s", keys[0], bodies[0])
		}
	})

	t.Run("a happy rating reaches nothing", func(t *testing.T) {
		code, resp := p.post("/hooks/salesiq", salesiqEvent("1002", "3", "great", 1), e2eKey)
		if code != 202 || !strings.Contains(resp, `"deliveries":0`) {
			t.Fatalf("post: %d %s", code, resp)
		}
		if n := p.query(`SELECT count(*) FROM deliveries WHERE event_id LIKE '%:1002:%'`); n != 0 {
			t.Errorf("%d deliveries for a happy rating", n)
		}
	})

	t.Run("Slack 500 twice then 200 gives exactly one message", func(t *testing.T) {
		p.post("/hooks/salesiq", salesiqEvent("1003", "1", "route:#flaky", 1), e2eKey)
		eventually(t, 15*time.Second, "the flaky message", func() bool { return len(slack.messages("#flaky")) == 1 })
		time.Sleep(500 * time.Millisecond)
		if n := len(slack.messages("#flaky")); n != 1 {
			t.Errorf("%d messages, want 1", n)
		}
		if n := len(slack.requestTimes("#flaky")); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})

	t.Run("channel_not_found is dead after one attempt", func(t *testing.T) {
		p.post("/hooks/salesiq", salesiqEvent("1004", "1", "route:#gone", 1), e2eKey)
		eventually(t, 10*time.Second, "the dead delivery", func() bool {
			return p.query(`SELECT count(*) FROM deliveries WHERE status='dead' AND attempts=1 AND event_id LIKE '%:1004:%'`) == 1
		})
		if n := len(slack.requestTimes("#gone")); n != 1 {
			t.Errorf("%d requests for a permanent error, want 1", n)
		}
	})

	t.Run("429 with Retry-After 1 is not retried before a second", func(t *testing.T) {
		p.post("/hooks/salesiq", salesiqEvent("1005", "1", "route:#busy", 1), e2eKey)
		eventually(t, 10*time.Second, "the busy message", func() bool { return len(slack.messages("#busy")) == 1 })
		ts := slack.requestTimes("#busy")
		if len(ts) != 2 {
			t.Fatalf("%d requests, want 2", len(ts))
		}
		if gap := ts[1].Sub(ts[0]); gap < time.Second {
			t.Errorf("retried after %v, before Retry-After's 1s", gap)
		}
	})

	t.Run("a verified body that does not parse is quarantined, not dropped", func(t *testing.T) {
		code, resp := p.post("/hooks/salesiq", []byte(`{"entity": not json`), e2eKey)
		if code != 202 {
			t.Fatalf("post: %d %s, want 202", code, resp)
		}
		if n := p.query(`SELECT count(*) FROM events WHERE quarantined = 1`); n != 1 {
			t.Errorf("%d quarantined events, want 1", n)
		}
	})

	t.Run("metrics count what happened", func(t *testing.T) {
		resp, err := http.Get("http://" + p.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`hookroute_events_total{outcome="unauthorized",source="salesiq"} 2`,
			`hookroute_events_total{outcome="duplicate",source="salesiq"} 1`,
			`hookroute_events_total{outcome="quarantined",source="salesiq"} 1`,
			`hookroute_delivery_attempts_total{outcome="dead",sink="slack"} 1`,
			`hookroute_deliveries_pending{sink="audit"} 0`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// Group commit: every write went through a commit, none twice.
		commits, writes := metricValue(t, b, "hookroute_store_commits_total"), metricValue(t, b, "hookroute_store_commit_writes_total")
		if commits < 1 || writes < commits {
			t.Errorf("store commits %v carrying %v writes: want at least one commit, and at least as many writes", commits, writes)
		}
		// serve's collector defaults, where the environment does not set them.
		if os.Getenv("GOGC") == "" {
			if v := metricValue(t, b, "go_gc_gogc_percent"); v != 400 {
				t.Errorf("GOGC = %v, want serve's default 400", v)
			}
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			if v := metricValue(t, b, "go_gc_gomemlimit_bytes"); v != 128<<20 {
				t.Errorf("GOMEMLIMIT = %v, want serve's default 128 MiB", v)
			}
		}
	})

	t.Run("every attempt is recorded", func(t *testing.T) {
		// Outcomes are recorded after the sink answers: give the last one its
		// commit before counting.
		eventually(t, 10*time.Second, "at least 7 attempts recorded", func() bool {
			return p.query(`SELECT count(*) FROM attempts`) >= 7
		})
	})

	t.Run("SIGTERM shuts down cleanly", func(t *testing.T) {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
			if logs := p.logs.String(); strings.Contains(logs, "xoxb-test-token") {
				t.Errorf("the Slack token appears in the router's output")
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no exit within 15s of SIGTERM")
		}
	})
}

// TestCrashLosesNothing kills the router with SIGKILL after it acknowledged
// events whose sink was down, restarts it, and checks that every
// acknowledged event is delivered.
func TestCrashLosesNothing(t *testing.T) {
	sink := &fakeHTTPSink{down: true}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	// 100 events failing at once may pause the sink before the kill, and the
	// pause outlives the restart: probe it often, so the test sees a sink
	// paused at the crash resume and deliver, not wait out the 30 s default.
	config := auditConfig(
		"retry: {max_attempts: 50, initial: 50ms, max_interval: 200ms, multiplier: 2}",
		"pause_probe: 200ms")
	env := auditEnv(t, srv.URL)
	dir := t.TempDir()
	p := startRouter(t, dir, config, env)
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, resp := p.post("/hooks/salesiq", salesiqEvent(fmt.Sprint(5000+i), "1", "crash", 1), e2eKey)
			if code == 202 {
				var r struct{ ID string }
				json.Unmarshal([]byte(resp), &r)
				mu.Lock()
				acked[r.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(acked) != n {
		t.Fatalf("%d of %d events acknowledged", len(acked), n)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil

	sink.setDown(false)
	p2 := startRouter(t, dir, config, env)
	eventually(t, 30*time.Second, "every acknowledged event delivered", func() bool {
		keys, _ := sink.received()
		uniq := map[string]bool{}
		for _, k := range keys {
			uniq[k] = true
		}
		return len(uniq) == n
	})
	// The sink has answered every request, but a worker records an outcome
	// after the answer, in the committer's next batch: wait for the store to
	// catch up rather than read it the instant the last answer went out.
	eventually(t, 10*time.Second, "every delivery marked delivered", func() bool {
		return p2.query(`SELECT count(*) FROM deliveries WHERE status='delivered'`) == n
	})
	keys, _ := sink.received()
	// Retries were running at the kill (the sink answered 503): a request
	// written just before it reaches the sink's handler after the sink is
	// up again, and is sent once more after the restart (at least once,
	// under the same key). At most the sink's 4 in flight can repeat.
	uniq := map[string]bool{}
	for _, k := range keys {
		uniq[k] = true
	}
	if len(uniq) != n || len(keys)-n > 4 {
		t.Errorf("%d requests for %d events (%d distinct keys): more repeats than attempts in flight at the kill", len(keys), n, len(uniq))
	}
}

// auditConfig is a router config with the salesiq source (the test key,
// as ${TEST_PUBLIC_KEY}) and one rule that sends sad ratings to an http
// sink "audit" at ${TEST_HTTP_URL}; each of sinkLines is one more key of
// that sink.
func auditConfig(sinkLines ...string) string {
	var extra strings.Builder
	for _, l := range sinkLines {
		extra.WriteString("    " + l + "\n")
	}
	return `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fakes listen on loopback
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: audit
    type: http
    url: ${TEST_HTTP_URL}
` + extra.String() + `rules:
  - {name: all-sad, when: chat.rating == "sad", to: [{sink: audit}]}
`
}

// auditEnv is auditConfig's environment, the sink at url.
func auditEnv(t *testing.T, url string) []string {
	return []string{"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + url}
}

// metricValue returns the value of an unlabelled metric in a Prometheus
// text exposition.
func metricValue(t *testing.T, exposition []byte, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(exposition), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exposed", name)
	return 0
}
