package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/internal/testenv"
	"github.com/hookroute/hookroute/router/verify"
)

func signBody(b []byte) (string, error) { return verify.SignSalesIQ(e2eKey, b) }

// postgresURL returns the test database's address, or skips the test.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("HOOKROUTE_TEST_POSTGRES")
	testenv.Require(t, u != "", "HOOKROUTE_TEST_POSTGRES is not set: skipping PostgreSQL tests (.ci/run sets it)")
	return u
}

// freshSchema creates a schema for one test and returns a URL that uses
// it; the schema is dropped when the test ends.
func freshSchema(t *testing.T, base string) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, conn
}

func countRows(t *testing.T, conn *pgx.Conn, url, q string) int {
	t.Helper()
	schema := url[strings.Index(url, "search_path=")+len("search_path="):]
	var n int
	if err := conn.QueryRow(context.Background(), strings.ReplaceAll(q, "$S", schema)).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// keySink is a fake HTTP sink that counts requests per Idempotency-Key.
type keySink struct {
	mu    sync.Mutex
	count map[string]int
	delay time.Duration
}

func (k *keySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	time.Sleep(k.delay)
	k.mu.Lock()
	k.count[r.Header.Get("Idempotency-Key")]++
	k.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (k *keySink) stats() (unique, total int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range k.count {
		unique++
		total += n
	}
	return
}

const replicaConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}", shutdown_timeout: 5s}
store: {url: "${TEST_STORE_URL}"}
egress: {allow: ["127.0.0.1/32"]}   # the fakes listen on loopback
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: audit
    type: http
    url: ${TEST_HTTP_URL}
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 50, initial: 50ms, max_interval: 500ms, multiplier: 2}
rules:
  - {name: everything, when: "true", to: [{sink: audit}]}
`

// sendRetrying posts body to one of the replicas, moving on to the next on
// a connection error or a 5xx, as a sender that retries would. It returns
// the event id once a replica acknowledged it.
func sendRetrying(t *testing.T, urls func() []string, start int, body []byte) (string, bool) {
	for try := 0; try < 40; try++ {
		us := urls()
		u := us[(start+try)%len(us)]
		req, _ := http.NewRequest(http.MethodPost, u+"/hooks/salesiq", strings.NewReader(string(body)))
		sig, _ := signBody(body)
		req.Header.Set("x-siqsignature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			var r struct{ ID string }
			json.Unmarshal(b, &r)
			return r.ID, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", false
}

// TestReplicasShareWork runs three routers on one PostgreSQL database,
// sends 3,000 signed events round-robin while killing a random replica with
// SIGKILL five times (restarting it each time), and checks at the sink that
// every acknowledged event was delivered, with duplicates only for
// deliveries in flight at a kill.
func TestReplicasShareWork(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	url, conn := freshSchema(t, postgresURL(t))
	sink := &keySink{count: map[string]int{}, delay: 2 * time.Millisecond}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	env := []string{"TEST_STORE_URL=" + url, "TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL}

	const replicas, events, kills, inflight = 3, 3000, 5, 4
	var mu sync.Mutex
	procs := make([]*routerProc, replicas)
	for i := range procs {
		procs[i] = startRouter(t, t.TempDir(), replicaConfig, env)
	}
	urls := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := make([]string, len(procs))
		for i, p := range procs {
			out[i] = p.ingest
		}
		return out
	}

	// Concurrent ingest of one event on two replicas stores it once.
	dup := salesiqEvent("same-everywhere", "1", "twice", 1)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); sendRetrying(t, urls, i%2, dup) }()
	}
	wg.Wait()
	if n := countRows(t, conn, url, `SELECT count(*) FROM $S.events WHERE id LIKE '%same-everywhere%'`); n != 1 {
		t.Fatalf("the same event sent 20 times to two replicas is stored %d times, want 1", n)
	}

	var acked sync.Map
	var next atomic.Int64
	stopKills := make(chan struct{})
	killsDone := make(chan int)
	go func() {
		n := 0
		defer func() { killsDone <- n }()
		for n < kills {
			select {
			case <-stopKills:
				return
			case <-time.After(700 * time.Millisecond):
			}
			i, _ := rand.Int(rand.Reader, big.NewInt(replicas))
			mu.Lock()
			victim := procs[i.Int64()]
			mu.Unlock()
			victim.cmd.Process.Signal(syscall.SIGKILL)
			<-victim.done
			victim.done <- nil
			fresh := startRouter(t, t.TempDir(), replicaConfig, env)
			mu.Lock()
			procs[i.Int64()] = fresh
			mu.Unlock()
			n++
		}
	}()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > events {
					return
				}
				body := salesiqEvent(fmt.Sprintf("r%05d", i), "1", "replicas", 1)
				if id, ok := sendRetrying(t, urls, int(i), body); ok {
					acked.Store(id, true)
				}
			}
		}()
	}
	wg.Wait()
	close(stopKills)
	killed := <-killsDone
	nAcked := 0
	acked.Range(func(_, _ any) bool { nAcked++; return true })
	if nAcked != events {
		t.Errorf("%d of %d events acknowledged", nAcked, events)
	}
	want := nAcked + 1 // plus the event sent to two replicas
	eventually(t, 60*time.Second, "every acknowledged event delivered", func() bool {
		u, _ := sink.stats()
		return u >= want
	})
	// Deliveries in flight at a kill arrived but were not recorded: their
	// leases (attempt timeout + 10 s) run out, and another replica sends
	// them again. Wait for that drain before counting.
	eventually(t, 60*time.Second, "every delivery recorded as delivered", func() bool {
		return countRows(t, conn, url, `SELECT count(*) FROM $S.deliveries WHERE status <> 'delivered'`) == 0
	})
	time.Sleep(300 * time.Millisecond)
	unique, total := sink.stats()
	t.Logf("%d events acknowledged, %d kills, %d deliveries (%d unique)", nAcked, killed, total, unique)
	if unique != want {
		t.Errorf("%d distinct deliveries, want %d", unique, want)
	}
	if dups := total - unique; dups > killed*inflight {
		t.Errorf("%d duplicate deliveries, more than kills × in-flight = %d", dups, killed*inflight)
	}
	if n := countRows(t, conn, url, `SELECT count(*) FROM $S.deliveries WHERE status <> 'delivered'`); n != 0 {
		t.Errorf("%d deliveries not delivered", n)
	}
}

// cutProxy forwards TCP to a target until cut: then it drops every
// connection and refuses new ones, as a network partition would.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

// TestPostgresOutage cuts the router's connection to PostgreSQL for 20
// seconds under load, through a TCP proxy (the machine's PostgreSQL keeps
// running), and checks: 503 during the outage, never a 2xx for what was not
// stored, no acknowledged event lost, and recovery without a restart.
func TestPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	url, conn := freshSchema(t, postgresURL(t))
	proxy := newCutProxy(t, "127.0.0.1:5432")
	proxied := strings.Replace(url, "127.0.0.1:5432", proxy.ln.Addr().String(), 1)
	if proxied == url {
		t.Skip("HOOKROUTE_TEST_POSTGRES does not name 127.0.0.1:5432; the proxy cannot stand in")
	}
	sink := &keySink{count: map[string]int{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	env := []string{"TEST_STORE_URL=" + proxied, "TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL}
	p := startRouter(t, t.TempDir(), replicaConfig, env)

	var acked []string
	codes := map[string]map[int]int{} // phase → status → count
	phase := "before"
	post := func(i int) {
		body := salesiqEvent(fmt.Sprintf("o%05d", i), "1", "outage", 1)
		code, resp := p.post("/hooks/salesiq", body, e2eKey)
		if codes[phase] == nil {
			codes[phase] = map[int]int{}
		}
		codes[phase][code]++
		if code/100 == 2 {
			var r struct{ ID string }
			json.Unmarshal([]byte(resp), &r)
			acked = append(acked, r.ID)
		}
	}
	i := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); i++ {
		post(i)
		time.Sleep(10 * time.Millisecond)
	}
	proxy.setCut(true)
	phase = "outage"
	time.Sleep(time.Second) // let in-flight requests settle into the outage
	for end := time.Now().Add(19 * time.Second); time.Now().Before(end); i++ {
		post(i)
		time.Sleep(50 * time.Millisecond)
	}
	ready, _ := http.Get(p.ingest + "/readyz")
	if ready != nil {
		ready.Body.Close()
		if ready.StatusCode != 503 {
			t.Errorf("/readyz during the outage: %d, want 503", ready.StatusCode)
		}
	}
	proxy.setCut(false)
	restored := time.Now()
	phase = "after"
	recovered := time.Duration(0)
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); i++ {
		post(i)
		if recovered == 0 && codes["after"][202] > 0 {
			recovered = time.Since(restored)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("status codes by phase: %v; ingest recovered %v after the cut ended", codes, recovered)
	if n := len(codes["outage"]) - len(filter(codes["outage"], 503)); n != 0 || codes["outage"][503] == 0 {
		t.Errorf("during the outage: %v, want only 503", codes["outage"])
	}
	// No log flood: repeated store errors are rate-limited (10, then one
	// a second), whatever the request rate.
	if n := strings.Count(p.logs.String(), `"msg":"ingest: store"`); n > 10+25 {
		t.Errorf("%d log lines for store errors during a 20s outage: a log flood", n)
	}
	if recovered == 0 || recovered > 5*time.Second {
		t.Errorf("ingest recovered after %v, want within 5s", recovered)
	}
	eventually(t, 30*time.Second, "every acknowledged event delivered", func() bool {
		u, _ := sink.stats()
		return u >= len(acked)
	})
	// More may be stored than acknowledged (a commit whose answer was lost
	// in the cut is a 503 the sender retries), never fewer.
	if n := countRows(t, conn, url, `SELECT count(*) FROM $S.events`); n < len(acked) {
		t.Errorf("%d events stored, %d acknowledged", n, len(acked))
	}
}

// filter returns the entries of m with key k.
func filter(m map[int]int, k int) map[int]int {
	out := map[int]int{}
	if v, ok := m[k]; ok {
		out[k] = v
	}
	return out
}
