package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hookroute/hookroute/internal/testenv"
)

// chromiumPath is where Debian's chromium package puts the browser (.ci/run
// installs it).
const chromiumPath = "/usr/bin/chromium"

const uiConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
admin:
  tokens:
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read, replay, trial, reload, silence, webhooks.create, webhooks.delete]}
    - {name: viewer, token: "${TEST_READ_TOKEN}", scopes: [read]}
egress: {allow: ["127.0.0.1/32"]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: audit
    type: http
    url: ${TEST_HTTP_URL}
    retry: {max_attempts: 3, initial: 100ms, max_interval: 200ms, multiplier: 2}
    pause_after: 1   # the 400 pauses it: the console resumes it
    # A resumed sink's worker still sleeps out its current probe interval
    # (worker.go), so keep it short.
    pause_probe: 1s
rules:
  - name: sad-chat
    source: salesiq
    when: event == "conversation.rated" && chat.rating == "sad"
    to: [{sink: audit}]
  - name: happy-chat
    source: salesiq
    when: event == "conversation.rated" && chat.rating == "happy"
    to: [{sink: audit, body: '{"happy": "{{ .visitor.name }}"}', dedup_key: "chat-{{ .chat.id }}"}]
  # A timer for the Timers view: it waits an hour, unless cancelled.
  - name: call-back
    source: salesiq
    when: event == "conversation.rated" && chat.feedback == "call me back"
    unless: {when: 'event == "conversation.rated" && chat.feedback == "called back"', same: [entity_id], within: 1h}
    to: [{sink: audit}]
`

// statusSink answers every request with its current status code and counts
// the requests it accepted.
type statusSink struct {
	status   atomic.Int32
	accepted atomic.Int32
}

func (s *statusSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	code := int(s.status.Load())
	if code < 300 {
		s.accepted.Add(1)
	}
	w.WriteHeader(code)
}

// adminGet calls the admin API with token and decodes the answer into v.
func adminGet(t *testing.T, p *routerProc, token, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// artifactDir is where screenshots go: $HOOKROUTE_TEST_ARTIFACTS (CI keeps
// it), else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("HOOKROUTE_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser drives one headless Chromium tab through the console.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string // the questions window.confirm asked, in order

	// acceptDialogs is the answer to the page's questions (false: Cancel).
	acceptDialogs atomic.Bool
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// Subscribing starts the browser; the messages are read all along so
	// that the end of the test can look for errors the page logged.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	// A dialog blocks the page, and the click that opened it, until it is
	// answered: record its question and answer it from another goroutine.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			accept := b.acceptDialogs.Load()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}
	}()
	return b
}

// questions returns the questions the page asked so far.
func (b *browser) questions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// js evaluates expr in the page and decodes its value into T.
func js[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls the JavaScript condition expr until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v; the status bar says %q", what, err, b.statusText())
	}
}

func (b *browser) statusText() string {
	v, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById('status').textContent`))
	return v
}

// waitStatus waits until the status bar shows the operation label as done,
// and fails the test when it shows it failed.
func (b *browser) waitStatus(label string) string {
	b.t.Helper()
	b.waitFor(label+" to end", fmt.Sprintf(`(() => { const s = document.getElementById('status');
		return s.textContent.startsWith(%q) && (s.dataset.state === 'done' || s.dataset.state === 'failed'); })()`, label+":"))
	if s := js[string](b, `document.getElementById('status').dataset.state`); s != "done" {
		b.t.Fatalf("%s: the status bar says %q", label, b.statusText())
	}
	return b.statusText()
}

func (b *browser) screenshot(dir, name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// TestConsoleInBrowser drives the web console in headless Chromium against
// the real binary: log in, read an event, trial-run an edited sample,
// replay a dead letter, and replay it once more after it was delivered,
// which the page asks about first (Cancel sends nothing, OK sends); make a
// silence (after a refused matcher), see what it silenced, and expire it;
// see a waiting timer and cancel it.
func TestConsoleInBrowser(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, err == nil, "no browser at "+chromiumPath+" (apt-get install chromium): skipping the console's browser test")
	sink := &statusSink{}
	sink.status.Store(http.StatusBadRequest) // permanent: the first delivery is dead at once
	sinkSrv := httptest.NewServer(sink)
	defer sinkSrv.Close()
	const token, readToken = "console-test-token-5d1f0c", "console-read-token-9a7e21"
	p := startRouter(t, t.TempDir(), uiConfig, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey),
		"TEST_HTTP_URL=" + sinkSrv.URL + "/hook",
		"TEST_ADMIN_TOKEN=" + token,
		"TEST_READ_TOKEN=" + readToken,
	})
	if code, resp := p.post("/hooks/salesiq", salesiqEvent("7001", "1", "Nobody answered <b>me</b> & left", 1), e2eKey); code != 202 {
		t.Fatalf("post: %d %s", code, resp)
	}
	var dead struct{ Items []struct{ ID string } }
	eventually(t, 10*time.Second, "the dead delivery", func() bool {
		adminGet(t, p, token, "/api/deliveries?status=dead", &dead)
		return len(dead.Items) == 1
	})
	deadID := dead.Items[0].ID
	var sinks struct{ Items []struct{ Paused bool } }
	eventually(t, 10*time.Second, "the sink paused", func() bool {
		adminGet(t, p, token, "/api/sinks", &sinks)
		return len(sinks.Items) == 1 && sinks.Items[0].Paused
	})
	artifacts := artifactDir(t)

	b := newBrowser(t)
	b.do("open the console", chromedp.Navigate("http://"+p.admin+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))

	t.Run("log in and read an event, escaped", func(t *testing.T) {
		b.t = t
		b.do("log in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login-button")))
		b.waitStatus("Loading events")
		b.do("open the event", chromedp.Click(chromedp.CSS(`#view td.id a[href^="#/event/"]`)))
		b.waitFor("the payload", `document.getElementById('event-payload') !== null`)
		payload := js[string](b, `document.getElementById('event-payload').textContent`)
		if !strings.Contains(payload, `Nobody answered <b>me</b> & left`) || !strings.Contains(payload, "40526000000002040") {
			t.Errorf("payload shown as %s", payload)
		}
		if js[bool](b, `document.querySelector('#view b') !== null`) {
			t.Error("the payload's <b> became an element")
		}
		if got := js[string](b, `sessionStorage.getItem('hookroute.token') + '|' + localStorage.length`); got != token+"|0" {
			t.Errorf("token storage: %q", got)
		}
	})

	t.Run("a dry trial of the edited sad sample: the sad rule stops matching", func(t *testing.T) {
		b.t = t
		b.do("open the trial page", chromedp.Click(chromedp.CSS(`#nav a[data-view="trial"]`)))
		b.waitStatus("Loading trial samples")
		// Pick the sad-rating sample of the salesiq source, as a person
		// would from the two lists.
		picked := js[string](b, `(() => {
			const src = document.getElementById('trial-source');
			src.value = 'salesiq'; src.dispatchEvent(new Event('change'));
			const ev = document.getElementById('trial-event');
			const opt = [...ev.options].find(o => /sad/i.test(o.textContent));
			if (!opt) return '';
			ev.value = opt.value; ev.dispatchEvent(new Event('change'));
			return opt.textContent; })()`)
		if picked == "" {
			t.Fatalf("no sad sample among %s", js[string](b, `[...document.getElementById('trial-event').options].map(o => o.textContent).join(' | ')`))
		}
		sample, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("trial-editor")))
		if err != nil {
			t.Fatal(err)
		}
		b.do("make the rating happy", chromedp.SetValue(chromedp.ID("trial-editor"), happier(t, sample)))
		b.do("run dry", chromedp.Click(chromedp.ID("trial-dry")))
		status := b.waitStatus("Trial run (dry)")
		t.Logf("sample %q; status bar: %s", picked, status)
		sad := `document.querySelector('#trial-result tr[data-rule="sad-chat"]')`
		if cls := js[string](b, sad+`.className`); cls != "not-matched" {
			t.Errorf("sad-chat row is %q, want not-matched", cls)
		}
		why := js[string](b, `[...`+sad+`.querySelectorAll('ul.explanation li')].map(l => l.textContent).join('\n')`)
		if why == "" {
			t.Error("no explanation shown for sad-chat")
		}
		t.Logf("sad-chat explanation:\n%s", why)
		if cls := js[string](b, `document.querySelector('#trial-result tr[data-rule="happy-chat"]').className`); cls != "matched" {
			t.Errorf("happy-chat row is %q, want matched", cls)
		}
		if req := js[string](b, `(document.querySelector('#trial-result section.route[data-rule="happy-chat"] .request') || {}).textContent || ''`); !strings.Contains(req, "POST") || !strings.Contains(req, `"happy"`) {
			t.Errorf("the happy route's request is shown as %q", req)
		}
		// The route has a dedup key, and the console's trial asks the
		// store: the chat has no object yet.
		if act := js[string](b, `(document.querySelector('#trial-result section.route[data-rule="happy-chat"] p.action') || {}).textContent || ''`); act != "Would create a new object" {
			t.Errorf("the happy route's action is shown as %q", act)
		}
		if n := sink.accepted.Load(); n != 0 {
			t.Errorf("a dry run reached the sink %d times", n)
		}
		b.screenshot(artifacts, "console-trial.png")

		b.do("break the JSON", chromedp.SetValue(chromedp.ID("trial-editor"), `{"entity": `), chromedp.Click(chromedp.ID("trial-dry")))
		b.waitFor("the JSON complaint", `document.getElementById('status').dataset.state === 'failed'`)
		if s := b.statusText(); !strings.Contains(s, "not valid JSON") {
			t.Errorf("invalid JSON: the status bar says %q", s)
		}
	})

	t.Run("resume the paused sink", func(t *testing.T) {
		b.t = t
		sink.status.Store(http.StatusOK)
		b.do("open sinks", chromedp.Click(chromedp.CSS(`#nav a[data-view="sinks"]`)))
		b.waitStatus("Loading sinks")
		if row := js[string](b, `document.querySelector('tr[data-sink="audit"]').textContent`); !strings.Contains(row, "paused") || !strings.Contains(row, "1 attempts in a row failed") {
			t.Errorf("the audit row shows %q", row)
		}
		b.do("resume", chromedp.Click(chromedp.CSS(`button.resume[data-sink="audit"]`)))
		b.waitStatus("Resume audit")
		var sinks struct{ Items []struct{ Paused bool } }
		adminGet(t, p, token, "/api/sinks", &sinks)
		if sinks.Items[0].Paused {
			t.Error("the sink is still paused")
		}
	})

	t.Run("replay a dead letter once the sink is back", func(t *testing.T) {
		b.t = t
		b.do("open dead letters", chromedp.Click(chromedp.CSS(`#nav a[data-view="dead"]`)))
		b.waitStatus("Loading dead letters")
		replayButton := chromedp.CSS(fmt.Sprintf(`button.replay[data-id=%q]`, deadID))
		b.do("replay", chromedp.Click(replayButton))
		b.waitStatus("Replay " + deadID)
		eventually(t, 10*time.Second, "the replayed delivery at the sink", func() bool { return sink.accepted.Load() == 1 })
		if s := js[string](b, fmt.Sprintf(`document.querySelector('tr[data-delivery=%q] td.status').textContent`, deadID)); !strings.Contains(s, "pending") {
			t.Errorf("the replayed row's status shows %q", s)
		}
		if q := b.questions(); len(q) != 0 {
			t.Errorf("replaying a dead letter asked %q", q)
		}
		b.screenshot(artifacts, "console-dead-letters.png")

		// The row still says it was dead and offers the button, but the
		// delivery has reached the sink since: a second click asks first,
		// and Cancel sends nothing.
		eventually(t, 10*time.Second, "the replayed delivery recorded as delivered", func() bool {
			var d struct{ Status string }
			adminGet(t, p, token, "/api/deliveries/"+deadID, &d)
			return d.Status == "delivered"
		})
		b.acceptDialogs.Store(false)
		b.do("replay again, then cancel", chromedp.Click(replayButton))
		if s := b.waitStatus("Replay " + deadID); !strings.Contains(s, "nothing was sent") {
			t.Errorf("cancelled replay: the status bar says %q", s)
		}
		q := b.questions()
		if len(q) != 1 || !strings.Contains(q[0], "already reached audit") || !strings.Contains(q[0], "again") {
			t.Fatalf("replaying a delivered delivery asked %q, want one question saying it reached audit", q)
		}
		var after struct{ Status string }
		adminGet(t, p, token, "/api/deliveries/"+deadID, &after)
		time.Sleep(300 * time.Millisecond) // time for a replay that should not be to reach the sink
		if n := sink.accepted.Load(); n != 1 || after.Status != "delivered" {
			t.Errorf("after Cancel: the sink has %d requests, the delivery is %q; want 1 and still delivered", n, after.Status)
		}
		if s := js[string](b, fmt.Sprintf(`document.querySelector('tr[data-delivery=%q] td.status').textContent`, deadID)); !strings.Contains(s, "delivered") {
			t.Errorf("after the check the row's status shows %q, want delivered", s)
		}

		b.do("open the delivery", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-delivery=%q] a[href^="#/delivery/"]`, deadID))))
		b.waitStatus("Loading delivery")
		rows := js[string](b, `[...document.querySelectorAll('table.attempts tbody tr')].map(r => r.textContent).join('\n')`)
		if !strings.Contains(rows, "400") || !strings.Contains(rows, "delivered") {
			t.Errorf("attempts table:\n%s", rows)
		}
		b.screenshot(artifacts, "console-delivery.png")

		// On the delivery's own page, OK sends it again.
		b.acceptDialogs.Store(true)
		b.do("replay from the delivery page, OK", chromedp.Click(replayButton))
		b.waitStatus("Replay " + deadID)
		if q := b.questions(); len(q) != 2 {
			t.Errorf("questions asked: %q, want a second one", q)
		}
		eventually(t, 10*time.Second, "the delivery sent again", func() bool { return sink.accepted.Load() == 2 })
	})

	t.Run("silences: a bad matcher, a good one, what it silenced, expire it", func(t *testing.T) {
		b.t = t
		b.do("open silences", chromedp.Click(chromedp.CSS(`#nav a[data-view="silences"]`)))
		b.waitStatus("Loading silences")
		if n := js[int](b, `document.querySelectorAll('#silences tbody tr').length`); n != 0 {
			t.Errorf("%d silences listed before any was made", n)
		}

		b.do("a matcher with a typo", chromedp.SetValue(chromedp.ID("silence-matcher"), `chat.feedbak == "hush"`),
			chromedp.SetValue(chromedp.ID("silence-duration"), "1h"), chromedp.Click(chromedp.ID("silence-create")))
		b.waitFor("the refusal", `document.getElementById('status').dataset.state === 'failed'`)
		if s := b.statusText(); !strings.HasPrefix(s, "Create silence: failed: matcher: line 1, column 6: ") || !strings.Contains(s, "feedbak") || !strings.Contains(s, "(HTTP 400)") {
			t.Errorf("a bad matcher: the status bar says %q", s)
		}
		if !js[bool](b, `document.getElementById('silence-matcher').classList.contains('invalid')`) {
			t.Error("the matcher field is not marked invalid")
		}

		b.do("a good matcher", chromedp.SetValue(chromedp.ID("silence-matcher"), `chat.feedback == "hush"`),
			chromedp.SetValue(chromedp.ID("silence-comment"), "<b>deploy</b> & co"), chromedp.Click(chromedp.ID("silence-create")))
		if s := b.waitStatus("Create silence"); !strings.Contains(s, " is active until ") {
			t.Errorf("created: the status bar says %q", s)
		}
		id := js[string](b, `(document.querySelector('#silences tbody tr[data-silence]') || {dataset: {}}).dataset.silence || ''`)
		if !strings.HasPrefix(id, "s_") {
			t.Fatalf("no silence row after creating one: %s", js[string](b, `document.getElementById('silences').textContent`))
		}
		rowSel := fmt.Sprintf(`document.querySelector('tr[data-silence=%q]')`, id)
		if row := js[string](b, rowSel+`.textContent`); !strings.HasPrefix(row, "active"+id) || !strings.Contains(row, `chat.feedback == "hush"`) ||
			!strings.Contains(row, "<b>deploy</b> & co") || !strings.Contains(row, "ops") {
			t.Errorf("the new row shows %q", row)
		}
		if js[bool](b, `document.querySelector('#silences b') !== null`) {
			t.Error("the comment's <b> became an element")
		}

		// An event it matches: its delivery is silenced, and the
		// deliveries list says by which silence, as a note with a link.
		if code, resp := p.post("/hooks/salesiq", salesiqEvent("7002", "1", "hush", 1), e2eKey); code != 202 {
			t.Fatalf("post: %d %s", code, resp)
		}
		var silenced struct{ Items []struct{ ID string } }
		eventually(t, 10*time.Second, "the silenced delivery", func() bool {
			adminGet(t, p, token, "/api/deliveries?status=silenced", &silenced)
			return len(silenced.Items) == 1
		})
		js[bool](b, `location.hash = '#/deliveries?status=silenced', true`)
		b.waitStatus("Loading deliveries")
		cell := fmt.Sprintf(`document.querySelector('tr[data-delivery=%q] td:nth-child(9)')`, silenced.Items[0].ID)
		if got := js[string](b, cell+`.className + '|' + `+cell+`.querySelector('a.silence-link').textContent`); got != "note|"+id {
			t.Errorf("the silenced row's last error cell: %q, want a note linking %s", got, id)
		}
		b.screenshot(artifacts, "console-silenced-deliveries.png")
		b.do("follow the link to the silence", chromedp.Click(chromedp.CSS(`a.silence-link`)))
		b.waitStatus("Loading silences")
		if cls := js[string](b, rowSel+`.className`); cls != "selected" {
			t.Errorf("the linked silence's row is %q, want selected", cls)
		}
		b.screenshot(artifacts, "console-silences.png")

		asked := len(b.questions())
		b.acceptDialogs.Store(true)
		b.do("expire", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.expire[data-id=%q]`, id))))
		if s := b.waitStatus("Expire " + id); !strings.Contains(s, "the silence is expired since") {
			t.Errorf("expired: the status bar says %q", s)
		}
		if q := b.questions(); len(q) != asked+1 || !strings.Contains(q[asked], "Expire silence "+id) {
			t.Errorf("expiring asked %q, want one more question naming the silence", q[asked:])
		}
		if row := js[string](b, rowSel+`.querySelector('td.state').textContent + '|' + (`+rowSel+`.querySelector('button.expire') === null)`); row != "expired|true" {
			t.Errorf("the expired row: %q, want expired and no Expire button", row)
		}
		var s struct{ State string }
		adminGet(t, p, token, "/api/silences/"+id, &s)
		if s.State != "expired" {
			t.Errorf("the API says the silence is %q", s.State)
		}

		// A token without the silence scope lists silences; its first try
		// at making one says why it cannot, and the form gives way to that.
		js[bool](b, fmt.Sprintf(`sessionStorage.setItem('hookroute.token', %q), location.hash = '#/silences?state=expired', true`, readToken))
		b.waitStatus("Loading silences")
		if n := js[int](b, `document.querySelectorAll('#silences tbody tr').length`); n != 1 {
			t.Errorf("the read-only token sees %d silences, want 1", n)
		}
		b.do("try to make one", chromedp.SetValue(chromedp.ID("silence-matcher"), `true`),
			chromedp.SetValue(chromedp.ID("silence-duration"), "1h"), chromedp.Click(chromedp.ID("silence-create")))
		b.waitFor("the refusal", `document.getElementById('status').dataset.state === 'failed'`)
		if s := b.statusText(); !strings.Contains(s, "this token lacks the silence scope") {
			t.Errorf("read-only token: the status bar says %q", s)
		}
		b.waitFor("the message instead of the form", `document.getElementById('silence-denied') !== null && document.getElementById('silence-form') === null`)
		var active struct{ Items []struct{ ID string } }
		adminGet(t, p, token, "/api/silences?state=active", &active)
		if len(active.Items) != 0 {
			t.Errorf("the read-only token made a silence: %+v", active.Items)
		}
	})

	t.Run("timers: a waiting one listed, cancelled, gone", func(t *testing.T) {
		b.t = t
		if code, resp := p.post("/hooks/salesiq", salesiqEvent("7003", "2", "call me back", 1), e2eKey); code != 202 {
			t.Fatalf("post: %d %s", code, resp)
		}
		var timers struct{ Items []struct{ ID string } }
		adminGet(t, p, token, "/api/timers", &timers)
		if len(timers.Items) != 1 {
			t.Fatalf("timers after the event: %+v, want one", timers.Items)
		}
		id := timers.Items[0].ID
		// The silences test left the read-only token in; this one cancels.
		js[bool](b, fmt.Sprintf(`sessionStorage.setItem('hookroute.token', %q), true`, token))
		b.do("open timers", chromedp.Click(chromedp.CSS(`#nav a[data-view="timers"]`)))
		b.waitStatus("Loading timers")
		rowSel := fmt.Sprintf(`document.querySelector('tr[data-timer=%q]')`, id)
		if row := js[string](b, `(`+rowSel+` || {textContent: ''}).textContent`); !strings.HasPrefix(row, "call-back") ||
			!strings.Contains(row, `entity_id = "7003"`) || !strings.Contains(row, "conversation.rated") || !strings.Contains(row, "audit at ") {
			t.Fatalf("the timer's row shows %q", row)
		}
		b.screenshot(artifacts, "console-timers.png")

		asked := len(b.questions())
		b.acceptDialogs.Store(true)
		b.do("cancel", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.cancel-timer[data-id=%q]`, id))))
		if s := b.waitStatus("Cancel timer " + id); !strings.Contains(s, "1 waiting deliveries cancelled") {
			t.Errorf("cancelled: the status bar says %q", s)
		}
		if q := b.questions(); len(q) != asked+1 || !strings.Contains(q[asked], "rule call-back") || !strings.Contains(q[asked], `entity_id = "7003"`) {
			t.Errorf("cancelling asked %q, want one more question naming the rule and the chat", q[asked:])
		}
		b.waitFor("the row gone", rowSel+` === null`)
		if !js[bool](b, `!document.querySelector('#view p.empty').hidden`) {
			t.Error("no 'No timers waiting' once the last one was cancelled")
		}
		adminGet(t, p, token, "/api/timers", &timers)
		var cancelled struct {
			Items []struct {
				Rule      string
				LastError string `json:"last_error"`
			}
		}
		adminGet(t, p, token, "/api/deliveries?status=cancelled", &cancelled)
		if len(timers.Items) != 0 || len(cancelled.Items) != 1 || cancelled.Items[0].Rule != "call-back" || cancelled.Items[0].LastError != "cancelled by operator ops" {
			t.Errorf("after the cancel: timers %+v, cancelled deliveries %+v", timers.Items, cancelled.Items)
		}
	})

	t.Run("scopes and a refused token", func(t *testing.T) {
		b.t = t
		js[bool](b, fmt.Sprintf(`sessionStorage.setItem('hookroute.token', %q), location.hash = '#/trial', true`, readToken))
		b.waitFor("the scope message", `document.getElementById('status').dataset.state === 'failed'`)
		if s := b.statusText(); !strings.Contains(s, "this token lacks the trial scope") {
			t.Errorf("read-only token on the trial page: the status bar says %q", s)
		}
		js[bool](b, `sessionStorage.setItem('hookroute.token', 'wrong'), location.hash = '#/sinks', true`)
		b.waitFor("the login form", `!document.getElementById('login').hidden`)
		if s := js[string](b, `document.getElementById('login-message').textContent`); !strings.Contains(s, "401") {
			t.Errorf("refused token: the login message is %q", s)
		}
		if js[bool](b, `sessionStorage.getItem('hookroute.token') !== null`) {
			t.Error("a refused token stays in sessionStorage")
		}
	})

	b.t = t
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s %s", m.Type, m.Text)
		}
	}
}

// happier sets the rating of a SalesIQ sample (envelope or bare entity) to
// 3, happy, keeping every other value exact.
func happier(t *testing.T, sample string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(sample))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("the sample in the editor is not JSON: %v\n%s", err, sample)
	}
	entity, ok := m["entity"].(map[string]any)
	if !ok {
		entity = m
	}
	entity["rating"] = 3
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
