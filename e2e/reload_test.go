package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const reloadConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fakes listen on loopback
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: audit
    type: http
    url: ${TEST_HTTP_URL}
    concurrency: CONCURRENCY
    retry: {max_attempts: 50, initial: 50ms, max_interval: 200ms, multiplier: 2}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: audit, body: '{"v": "VERSION", "id": "{{ .id }}"}'}]}
`

// TestReloadUnderLoad reloads the config every second for a minute while
// events flow — valid configs that change the sink's concurrency and the
// message, and every fifth time an invalid one — and checks that no event
// is lost, none delivered twice, and the invalid ones are rejected.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	sink := &keySink{count: map[string]int{}, delay: time.Millisecond}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	version := func(i int) string {
		return strings.NewReplacer("CONCURRENCY", fmt.Sprint(1+i%4), "VERSION", fmt.Sprint(i)).Replace(reloadConfig)
	}
	p := startRouter(t, dir, version(0), []string{"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL})
	cfgPath := filepath.Join(dir, "rules.yaml")
	rendered, _ := os.ReadFile(cfgPath) // with the addresses filled in
	base := string(rendered)

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, resp := p.post("/hooks/salesiq", salesiqEvent(fmt.Sprintf("rl%d-%d", w, i), "1", "reload", 1), e2eKey)
				if code == 202 {
					var r struct{ ID string }
					json.Unmarshal([]byte(resp), &r)
					mu.Lock()
					acked[r.ID] = true
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	valid, invalid := 0, 0
	for i := 1; i <= 60; i++ {
		time.Sleep(time.Second)
		next := base
		if i%5 == 0 {
			next = strings.Replace(base, `chat.rating == "sad"`, `chat.ratng == "sad"`, 1)
			invalid++
		} else {
			next = strings.NewReplacer(`"v": "0"`, fmt.Sprintf(`"v": "%d"`, i), "concurrency: 1", fmt.Sprintf("concurrency: %d", 1+i%4)).Replace(base)
			valid++
		}
		if err := os.WriteFile(cfgPath, []byte(next), 0o600); err != nil {
			t.Fatal(err)
		}
		p.cmd.Process.Signal(syscall.SIGHUP)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	eventually(t, 30*time.Second, "every acknowledged event delivered", func() bool { u, _ := sink.stats(); return u >= n })
	time.Sleep(300 * time.Millisecond)
	unique, total := sink.stats()
	t.Logf("%d events acknowledged and delivered; %d valid and %d invalid reloads", n, valid, invalid)
	if unique != n || total != n {
		t.Errorf("%d deliveries (%d distinct) for %d events: lost or sent twice", total, unique, n)
	}
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`hookroute_config_reloads_total{result="success"} %d`, valid),
		fmt.Sprintf(`hookroute_config_reloads_total{result="failure"} %d`, invalid),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(p.logs.String(), "config reload rejected") {
		t.Error("no log line for a rejected reload")
	}
}
