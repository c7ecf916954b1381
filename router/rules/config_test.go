package rules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// testkit.BaseConfig is a valid config; tests append or replace parts of it.
func mustLoad(t *testing.T, src string, env map[string]string) (*Runtime, *testkit.FakeFactory) {
	t.Helper()
	return testkit.MustLoad(t, Load, src, env)
}

func loadErr(t *testing.T, src string, env map[string]string) string {
	t.Helper()
	return testkit.LoadError(t, Load, src, env)
}

func TestLoadValid(t *testing.T) {
	rt, f := mustLoad(t, testkit.BaseConfig, nil)
	if len(rt.Sources) != 2 || len(rt.Rules) != 1 || f.Sinks["out"] == nil {
		t.Fatalf("got %d sources, %d rules, sinks %v", len(rt.Sources), len(rt.Rules), f.Sinks)
	}
	if s, ok := rt.SourceByPath("/hooks/siq"); !ok || s.Name != "siq" {
		t.Fatalf("SourceByPath(/hooks/siq) = %v, %v", s, ok)
	}
}

func TestLoadErrorsWithPositions(t *testing.T) {
	cases := []struct {
		name, src string
		env       map[string]string
		want      []string // each must appear in the error text
	}{
		{"typo in when", strings.Replace(testkit.BaseConfig, `chat.rating == "sad"`, `chat.ratng == "sad"`, 1), nil,
			[]string{`rules.yaml:15:16: rules[0].when: type router.SalesIQChat has no field ratng`}},
		{"typo in template", strings.Replace(testkit.BaseConfig, `{{ .visitor.name }}`, `{{ .visitor.nmae }}`, 1), nil,
			[]string{`rules.yaml:18:15: rules[0].to[0].text: template: visitor has no field "nmae"`}},
		{"unknown top-level key", testkit.BaseConfig + "\nbogus: 1\n", nil,
			[]string{`rules.yaml:20:1: bogus: unknown key "bogus"`}},
		{"unknown sink key", strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    chanel: x", 1), nil,
			[]string{`rules.yaml:12:5: sinks[0].chanel: unknown key "chanel"`}},
		{"unknown route key", strings.Replace(testkit.BaseConfig, `text: "{{ .visitor.name }}"`, `txt: hi`, 1), nil,
			[]string{`rules.yaml:18:9: rules[0].to[0].txt: a route to a fake sink takes no "txt"`, `needs "text"`}},
		{"unset env", strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    token: ${NOPE_TOKEN}", 1), nil,
			[]string{`rules.yaml:12:12: environment variable NOPE_TOKEN is not set`}},
		{"literal secret", strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    token: hunter2hunter2", 1), nil,
			[]string{`rules.yaml:12:12: sinks[0].token: secrets must be given by reference`}},
		{"unknown sink in route", strings.Replace(testkit.BaseConfig, "- sink: out", "- sink: nope", 1), nil,
			[]string{`rules.yaml:17:15: rules[0].to[0].sink: unknown sink "nope"`}},
		{"missing secret", strings.Replace(testkit.BaseConfig, "type: none", "type: github\n    secret: ${GH_SECRET:-}", 1), nil,
			[]string{`sources[1].secret: a github source needs a secret`}},
		{"non-bool when", strings.Replace(testkit.BaseConfig, `chat.rating == "sad"`, `chat.rating`, 1), nil,
			[]string{`rules[0].when: expected bool, but got string`}},
		{"syntax", "sources: [\n", nil, []string{`rules.yaml:`}},
		{"alias bomb", "a: &a [x]\nb: *a\n", nil, []string{"aliases"}},
		{"unknown source type", strings.Replace(testkit.BaseConfig, "type: none", "type: nonee", 1), nil,
			[]string{`rules.yaml:8:11: sources[1].type: unknown source type "nonee"`}},
		{"source key of other type", strings.Replace(testkit.BaseConfig, "type: none", "type: none\n    header: X-Sig", 1), nil,
			[]string{`sources[1].header: not a key of a none source`}},
		{"bad duration", testkit.BaseConfig + "defaults:\n  timeout: 5 parsecs\n", nil, []string{"defaults.timeout", "invalid duration"}},
		{"retention too short", testkit.BaseConfig + "store:\n  retention: 1d\n", nil, []string{"store.retention: must be at least 7d"}},
		{"same listener", testkit.BaseConfig + "server:\n  listen: ':9000'\n  admin_listen: ':9000'\n", nil, []string{"must differ from server.listen"}},
		{"drop_headers: not a header name", testkit.BaseConfig + "server:\n  drop_headers: [x-ok, 'x bad']\n", nil,
			[]string{`rules.yaml:20:24: server.drop_headers[1]: not a header name`}},
		{"drop_headers: a header the id comes from", strings.Replace(testkit.BaseConfig, "type: none", "type: github\n    secret: ${GH}", 1) +
			"server:\n  drop_headers: [X-GitHub-Delivery, x-github-event]\n", map[string]string{"GH": "s3cr3t-s3cr3t"},
			[]string{`rules.yaml:21:18: server.drop_headers[0]: github source "gen" takes its event id or name from x-github-delivery; it cannot be dropped`,
				`rules.yaml:21:37: server.drop_headers[1]: github source "gen" takes its event id or name from x-github-event`}},
		{"read_timeout zero", testkit.BaseConfig + "server:\n  read_timeout: 0s\n", nil, []string{"rules.yaml:20:17: server.read_timeout: must be positive"}},
		{"read_timeout negative", testkit.BaseConfig + "server:\n  read_timeout: -1s\n", nil, []string{"rules.yaml:20:17: server.read_timeout: invalid duration"}},
		{"read_timeout not a duration", testkit.BaseConfig + "server:\n  read_timeout: soon\n", nil, []string{"rules.yaml:20:17: server.read_timeout: invalid duration"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == nil {
				return
			}
			got := loadErr(t, c.src, c.env)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("error:\n%s\nwant it to contain:\n%s", got, w)
				}
			}
		})
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, `chat.rating == "sad"`, `chat.ratng == "sad"`, 1)
	src = strings.Replace(src, "type: fake", "type: fake\n    chanel: x", 1)
	got := loadErr(t, src, nil)
	if n := strings.Count(got, "\n") + 1; n != 2 {
		t.Fatalf("got %d errors, want 2:\n%s", n, got)
	}
	if !strings.HasPrefix(got, "rules.yaml:12:") {
		t.Fatalf("errors not sorted by position:\n%s", got)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const canary = "CANARY-s3cr3t-value-9f8e7d"
	src := strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    token: ${TOK}\n    note: [${TOK}]", 1)
	got := loadErr(t, src, map[string]string{"TOK": canary})
	if strings.Contains(got, canary) {
		t.Fatalf("error leaks the secret: %s", got)
	}
	if router.Secret(canary).String() == canary {
		t.Fatal("Secret.String reveals the value")
	}
}

func TestEnvExpansion(t *testing.T) {
	look := func(k string) (string, bool) {
		m := map[string]string{"A": "x", "EMPTY": ""}
		v, ok := m[k]
		return v, ok
	}
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "x", ""},
		{"a${A}b${A}", "axbx", ""},
		{"${B:-dflt}", "dflt", ""},
		{"${EMPTY:-dflt}", "dflt", ""},
		{"${EMPTY}", "", ""},
		{"$${A}", "${A}", ""},
		{"${B}", "", "environment variable B is not set"},
		{"${A", "", "unterminated"},
		{"${1A}", "", "invalid environment variable name"},
		{"${A:x}", "", "invalid environment variable name"},
		{"${A:?set A}", "x", ""},
		{"${B:?set B to the PEM, or mount it and set B_FILE}", "", "environment variable B is not set: set B to the PEM, or mount it and set B_FILE"},
		{"${EMPTY:?give it a value}", "", "environment variable EMPTY is empty: give it a value"},
		{"${B:?}", "", "environment variable B is not set"},
		{"${B:?no: defaults:-here}", "", "environment variable B is not set: no: defaults:-here"},
		{"${B:-d:?m}", "d:?m", ""},
	}
	for _, c := range cases {
		got, _, err := config.ExpandString(c.in, look)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("expandEnv(%q) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expandEnv(%q) = %q, %v, want %q", c.in, got, err, c.want)
		}
	}
}

// TestEnvFromFile: a variable that is unset or empty while NAME_FILE is
// set is read from that file (trailing newlines off), as container
// platforms mount secrets; errors name the variable, never the path.
func TestEnvFromFile(t *testing.T) {
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(pemFile, []byte(testkit.PublicPEM+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 65<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "CANARY-path-4f3a")
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cases := []struct {
		name, in string
		env      map[string]string
		want     string
		err      string
	}{
		{"file", "${K}", map[string]string{"K_FILE": pemFile}, strings.TrimRight(testkit.PublicPEM, "\n"), ""},
		{"file for an empty variable", "${K:?m}", map[string]string{"K": "", "K_FILE": pemFile}, strings.TrimRight(testkit.PublicPEM, "\n"), ""},
		{"empty _FILE ignored", "${K:-d}", map[string]string{"K_FILE": ""}, "d", ""},
		{"the variable wins", "${K}", map[string]string{"K": "x", "K_FILE": pemFile}, "x", ""},
		{"missing file", "${K}", map[string]string{"K_FILE": missing}, "", "environment variable K_FILE: cannot read the file it names: no such file or directory"},
		{"empty file", "${K:?say how}", map[string]string{"K_FILE": empty}, "", "environment variable K is empty: say how"},
		{"too large", "${K}", map[string]string{"K_FILE": big}, "", "environment variable K_FILE: the file it names is larger than 64 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := config.ExpandString(c.in, env(c.env))
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("expandEnv(%q) error = %v, want %q", c.in, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("expandEnv(%q) = %q, %v, want %q", c.in, got, err, c.want)
			}
		})
	}
	// Through a load: the key from a file, by reference.
	mustLoad(t, strings.Replace(testkit.BaseConfig, "${PUBKEY}", "${FILED_KEY}", 1), map[string]string{"FILED_KEY_FILE": pemFile})
}

// TestSecretMustBeOneReference: a credential field holds exactly one
// ${NAME} reference with at most an empty default; anything else would put
// part of the secret in the file. Each form is a load error at the
// scalar's position that quotes neither the file's text nor the value.
func TestSecretMustBeOneReference(t *testing.T) {
	const lit = "lit3ral-s3cret"
	env := map[string]string{"TOK": "from-the-env-0123", "TOK2": "other-env-4567"}
	sink := func(v string) string {
		return strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    token: "+v, 1)
	}
	const (
		one     = "a secret must be exactly one ${NAME} reference, with nothing before or after it"
		deflt   = "a secret's default must be empty (${NAME:-})"
		literal = "secrets must be given by reference (${NAME})"
	)
	for _, c := range []struct{ name, src, want string }{
		{"literal default", sink("${TOK:-" + lit + "}"), "rules.yaml:12:12: sinks[0].token: " + deflt},
		{"literal default, variable unset", sink("${UNSET:-" + lit + "}"), "rules.yaml:12:12: sinks[0].token: " + deflt},
		{"text after", sink("${TOK}" + lit), "rules.yaml:12:12: sinks[0].token: " + one},
		{"text before", sink(lit + "${TOK}"), "rules.yaml:12:12: sinks[0].token: " + one},
		{"two references", sink("${TOK}${TOK2}"), "rules.yaml:12:12: sinks[0].token: " + one},
		{"two empty defaults", sink("${TOK:-}${TOK2:-}"), "rules.yaml:12:12: sinks[0].token: " + one},
		{"quoted, a space after", sink(`"${TOK} "`), "rules.yaml:12:12: sinks[0].token: " + one},
		{"escaped", sink("$${TOK}" + lit), "rules.yaml:12:12: sinks[0].token: " + literal},
		{"escape beside a reference", sink("${TOK}$${" + lit + "}"), "rules.yaml:12:12: sinks[0].token: " + one},
		{"source secret", strings.Replace(testkit.BaseConfig, "type: none", "type: github\n    secret: ${TOK:-"+lit+"}", 1),
			"rules.yaml:9:13: sources[1].secret: " + deflt},
		{"source secrets list", strings.Replace(testkit.BaseConfig, "type: none", "type: hmac-sha256\n    header: X-Sig\n    secrets: ['${TOK}', 'x${TOK2}']", 1),
			"rules.yaml:10:25: sources[1].secrets[1]: " + one},
		{"admin token", testkit.BaseConfig + "admin:\n  tokens:\n    - {name: ops, token: '" + lit + "${TOK}', scopes: [read]}\n",
			"rules.yaml:21:26: admin.tokens[0].token: " + one},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := loadErr(t, c.src, env)
			if !strings.Contains(got, c.want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", got, c.want)
			}
			for _, leak := range []string{lit, env["TOK"], env["TOK2"]} {
				if strings.Contains(got, leak) {
					t.Errorf("the error quotes %q:\n%s", leak, got)
				}
			}
		})
	}
	// One reference alone, its default empty or absent, loads.
	for _, v := range []string{"${TOK}", "${TOK:-}", `"${TOK}"`, "${UNSET:-}"} {
		rt, f := mustLoad(t, sink(v), env)
		if got := f.Sinks["out"]; rt.Sinks["out"] == nil || got == nil {
			t.Errorf("token: %s did not load a sink", v)
		}
	}
}

func TestOptionalSinkSwitchedOff(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    optional: true\n    token: ${TOK:-}", 1)
	rt, f := mustLoad(t, src, nil)
	if !rt.Sinks["out"].Disabled || f.Sinks["out"] != nil {
		t.Fatalf("optional sink with empty credentials: disabled=%v built=%v", rt.Sinks["out"].Disabled, f.Sinks["out"] != nil)
	}
}

func TestKeyFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.pem"), []byte(testkit.PublicPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(testkit.BaseConfig, "- pem: ${PUBKEY}", "- file: k.pem", 1)
	cfg := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(cfg, &testkit.FakeFactory{}); err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
}

// TestAdminListenerBeyondLoopbackNeedsToken: an admin listener that the
// network can reach, with no admin token, would serve /metrics to anyone:
// a load error at the admin_listen value that says what to do. On
// loopback, or with a token, it loads.
func TestAdminListenerBeyondLoopbackNeedsToken(t *testing.T) {
	const token = "admin:\n  tokens: [{name: ops, token: '${ADMIN_TOKEN}', scopes: [read]}]\n"
	env := map[string]string{"ADMIN_TOKEN": "0123456789abcdef0123"}
	for _, addr := range []string{"0.0.0.0:9090", ":9090", "[::]:9090", "10.1.2.3:9090", "admin.internal:9090", "[::ffff:10.1.2.3]:9090"} {
		t.Run(addr, func(t *testing.T) {
			src := testkit.BaseConfig + "server:\n  admin_listen: '" + addr + "'\n"
			got := loadErr(t, src, nil)
			for _, want := range []string{
				"rules.yaml:20:17: server.admin_listen: the admin listener would be reachable from the network with no admin token",
				"Add a token (admin.tokens:",
				"or listen on loopback (127.0.0.1:PORT, [::1]:PORT or localhost:PORT",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("error:\n%s\nwant it to contain:\n%s", got, want)
				}
			}
			mustLoad(t, src+token, env)
		})
	}
	for _, addr := range []string{"127.0.0.1:9090", "127.0.0.2:0", "[::1]:9090", "localhost:9090", "LocalHost:9090", "[::ffff:127.0.0.1]:9090", ""} {
		t.Run("loopback "+addr, func(t *testing.T) {
			mustLoad(t, testkit.BaseConfig+"server:\n  admin_listen: '"+addr+"'\n", nil)
		})
	}
}

func TestReadTimeout(t *testing.T) {
	rt, _ := mustLoad(t, testkit.BaseConfig, nil)
	if got := time.Duration(rt.Config.Server.ReadTimeout); got != 10*time.Second {
		t.Errorf("default server.read_timeout = %v, want 10s", got)
	}
	rt, _ = mustLoad(t, testkit.BaseConfig+"server:\n  read_timeout: 3s\n", nil)
	if got := time.Duration(rt.Config.Server.ReadTimeout); got != 3*time.Second {
		t.Errorf("server.read_timeout = %v, want 3s", got)
	}
}

// TestDemoKeyWarned: a salesiq source that trusts the demo key, whose
// private half is in the repository, loads (the example config runs with
// it) but with a warning that check prints and serve logs.
func TestDemoKeyWarned(t *testing.T) {
	demo, err := filepath.Abs("../../examples/keys/demo-salesiq-public.pem")
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := mustLoad(t, strings.Replace(testkit.BaseConfig, "- pem: ${PUBKEY}", "- pem: ${PUBKEY}\n      - file: "+demo, 1), nil)
	if !slices.ContainsFunc(rt.Warnings, func(w string) bool {
		return strings.Contains(w, `source "siq" trusts the demo SalesIQ key`)
	}) {
		t.Errorf("warnings %q, want one about the demo key", rt.Warnings)
	}
	rt, _ = mustLoad(t, testkit.BaseConfig, nil)
	for _, w := range rt.Warnings {
		if strings.Contains(w, "demo") {
			t.Errorf("warning %q for a source without the demo key", w)
		}
	}
}

func TestSinkDefaultsAndOverrides(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, "type: fake", "type: fake\n    timeout: 2s\n    retry: {max_attempts: 3}", 1)
	rt, _ := mustLoad(t, src, nil)
	s := rt.Sinks["out"]
	if s.Timeout.Seconds() != 2 || s.Retry.MaxAttempts != 3 || s.Retry.Multiplier != 2 || s.Concurrency != 4 {
		t.Fatalf("sink settings %+v", s)
	}
}

// A source's own event: expression may replace the header GitHub's
// default reads, which can then be dropped; expressions that read a
// dropped header are warned about, since they only ever see nothing.
func TestDropHeadersWarnings(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, "type: none", "type: github\n    secret: ${GH}\n    event: payload.kind\n    id: headers[\"x-api-key\"]", 1) +
		"  - {name: gen-key, source: gen, when: 'headers[\"x-tenant-secret\"] != \"\"', to: [{sink: out, text: hi}]}\n" +
		"  - {name: siq-key, source: siq, when: 'headers[\"x-api-key\"] != \"\"', to: [{sink: out, text: hi}]}\n" +
		"server:\n  drop_headers: [x-github-event, X-Tenant-Secret]\n"
	rt, _ := mustLoad(t, src, map[string]string{"GH": "s3cr3t-s3cr3t"})
	got := strings.Join(rt.Warnings, "\n")
	for _, w := range []string{`source "gen": id reads headers["x-api-key"]`, `rule "gen-key": when reads headers["x-tenant-secret"]`,
		`rule "siq-key": when reads headers["x-api-key"]`} {
		if !strings.Contains(got, w) {
			t.Errorf("warnings:\n%s\nwant one containing %s", got, w)
		}
	}
	if strings.Contains(got, "sad") {
		t.Errorf("warnings:\n%s\nwant none for rule sad, which reads no header", got)
	}
}

// afterConfig has three sinks and a rule whose routes use after:; tests
// replace AFTER_DESK and AFTER_OUT.
const afterConfig = `
sources:
  - name: siq
    type: salesiq
    public_keys:
      - pem: ${PUBKEY}
sinks:
  - name: out
    type: fake
  - name: desk
    type: fake
  - name: pager
    type: fake
    refuse: subject
rules:
  - name: sad
    source: siq
    when: chat.rating == "sad"
    to:
      - sink: desk
        text: "{{ .visitor.name }}"
        after: AFTER_DESK
      - sink: out
        text: "{{ (index .links \"desk\").url }}"
        dedup_key: "chat-{{ .chat.id }}"
        after: AFTER_OUT
`

func afterSrc(desk, out string) string {
	return strings.NewReplacer("AFTER_DESK", desk, "AFTER_OUT", out).Replace(afterConfig)
}

func TestAfterAndLinks(t *testing.T) {
	rt, _ := mustLoad(t, afterSrc("[]", "[desk, pager]"), nil)
	routes := rt.Rules[0].Routes
	if len(routes[0].After) != 0 || !slices.Equal(routes[1].After, []string{"desk", "pager"}) {
		t.Errorf("after = %v and %v; want none and [desk pager]", routes[0].After, routes[1].After)
	}
	if routes[0].UsesLinks || !routes[1].UsesLinks {
		t.Errorf("UsesLinks = %v, %v; want false, true", routes[0].UsesLinks, routes[1].UsesLinks)
	}
}

func TestAfterErrors(t *testing.T) {
	cases := []struct{ name, desk, out, want string }{
		{"cycle", "[out]", "[desk]", `rules.yaml:26:16: rules[0].to[1].after: after: waits in a circle: desk waits for out waits for desk`},
		{"itself", "[desk]", "[]", `after: waits in a circle: desk waits for desk`},
		{"unknown sink", "[]", "[desk, nope]", `rules.yaml:26:23: rules[0].to[1].after[1]: unknown sink "nope"`},
		{"twice", "[]", "[desk, desk]", `rules[0].to[1].after[1]: sink "desk" is listed twice`},
		{"not a list", "[]", "desk", `rules[0].to[1].after: want a list of sink names`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadErr(t, afterSrc(tc.desk, tc.out), nil); !strings.Contains(got, tc.want) {
				t.Errorf("error = %s\nwant it to contain %s", got, tc.want)
			}
		})
	}
}

func TestLinksNotInDedupKey(t *testing.T) {
	src := strings.Replace(afterSrc("[]", "[]"), `dedup_key: "chat-{{ .chat.id }}"`, `dedup_key: "{{ .links.desk.id }}"`, 1)
	if got := loadErr(t, src, nil); !strings.Contains(got, "rules[0].to[1].dedup_key: the dedup key cannot read .links") {
		t.Errorf("error = %s", got)
	}
}

func TestReadsLinks(t *testing.T) {
	for src, want := range map[string]bool{
		`{{ (index .links "desk").url }}`:                   true,
		`{{ .links.desk.url }}`:                             true,
		`{{ with .chat }}{{ $.links.desk.url }}{{ end }}`:   true,
		`{{ if .links }}x{{ end }}`:                         true,
		`{{ range $k, $v := .links }}{{ $v.url }}{{ end }}`: true,
		`{{ .chat.id }} links`:                              false,
		`{{ .visitor.name | printf "%s links" }}`:           false,
	} {
		f, err := compileTemplate("text", src, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got := readsLinks(f); got != want {
			t.Errorf("readsLinks(%s) = %v, want %v", src, got, want)
		}
	}
}

func TestRouteCheckerProblems(t *testing.T) {
	src := strings.Replace(afterSrc("[]", "[]"), "      - sink: desk\n", "      - sink: pager\n        subject: hi\n        text: x\n      - sink: desk\n", 1)
	if got := loadErr(t, src, nil); !strings.Contains(got, `rules.yaml:21:18: rules[0].to[0].subject: the fake refuses subject`) {
		t.Errorf("error = %s", got)
	}
}

func TestOnMissing(t *testing.T) {
	src := strings.Replace(afterSrc("[]", "[]"), `dedup_key: "chat-{{ .chat.id }}"`, `dedup_key: "chat-{{ .chat.id }}"`+"\n        on_missing: skip", 1)
	rt, _ := mustLoad(t, src, nil)
	if r := rt.Rules[0].Routes; r[0].OnMissing != "create" || r[1].OnMissing != "skip" {
		t.Errorf("on_missing = %q, %q; want create (the default), skip", r[0].OnMissing, r[1].OnMissing)
	}
	for bad, want := range map[string]string{
		strings.Replace(src, "on_missing: skip", "on_missing: later", 1):                                                                    "rules[0].to[1].on_missing: want create or skip",
		strings.Replace(afterSrc("[]", "[]"), `text: "{{ .visitor.name }}"`, `text: "{{ .visitor.name }}"`+"\n        on_missing: skip", 1): "rules.yaml:22:21: rules[0].to[0].on_missing: needs dedup_key",
	} {
		if got := loadErr(t, bad, nil); !strings.Contains(got, want) {
			t.Errorf("error = %s\nwant it to contain %s", got, want)
		}
	}
}

// scheduleSrc is afterConfig's sinks and rule with a schedule section and
// the first route kept to it by ROUTE_WINDOW.
func scheduleSrc(schedules, window string) string {
	src := strings.Replace(afterSrc("[]", "[]"), "        after: []\n", "        "+window+"\n", 1)
	return src + "schedules:\n" + schedules
}

func TestSchedules(t *testing.T) {
	const business = "  - {name: business, timezone: Europe/Berlin, weekly: ['mon-fri 09:00-18:00'], except: ['2026-12-25']}\n"
	rt, _ := mustLoad(t, scheduleSrc(business, "during: business"), nil)
	w := rt.Rules[0].Routes[0].Window
	if w == nil || w.Outside || w.Schedule != rt.Schedules["business"] || w.Key() != "during: business" {
		t.Fatalf("window = %+v; want during business", w)
	}
	sat := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if w.Allows(sat) || !w.Next(sat).Equal(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("during business on a Saturday: allows %v, next %v; want no, Monday 09:00 CET", w.Allows(sat), w.Next(sat))
	}
	rt, _ = mustLoad(t, scheduleSrc(business, "outside: business"), nil)
	w = rt.Rules[0].Routes[0].Window
	mon := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	if !w.Outside || !w.Allows(sat) || w.Allows(mon) || !w.Next(mon).Equal(time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)) {
		t.Errorf("outside business: allows %v on Saturday, %v on Monday, next %v; want yes, no, Monday 18:00 CET", w.Allows(sat), w.Allows(mon), w.Next(mon))
	}
	for _, tc := range []struct{ schedules, window, want string }{
		{"  - {name: b, timezone: Mars/Olympus, weekly: ['mon 09:00-18:00']}\n", "during: b", "schedules[0].timezone: unknown time zone"},
		{"  - name: b\n    timezone: UTC\n    weekly:\n      - 'mon 09:00-18:00'\n      - 'mon-fry 09:00-18:00'\n", "during: b",
			`rules.yaml:32:9: schedules[0].weekly[1]: unknown day "fry"`},
		{"  - {name: b, timezone: UTC, except: ['2026-13-01']}\n", "during: b", "schedules[0].except[0]:"},
		{business + business, "during: business", `schedules[1].name: duplicate schedule name "business"`},
		{business, "during: nope", `rules[0].to[0].during: unknown schedule "nope"`},
		{business, "during: business\n        outside: business", "rules[0].to[0].outside: a route keeps to one schedule"},
	} {
		if got := loadErr(t, scheduleSrc(tc.schedules, tc.window), nil); !strings.Contains(got, tc.want) {
			t.Errorf("error = %s\nwant it to contain %s", got, tc.want)
		}
	}
}

func TestCooldownAndWhenClosed(t *testing.T) {
	const business = "  - {name: business, timezone: UTC, weekly: ['mon-fri 09:00-18:00']}\n"
	rt, _ := mustLoad(t, scheduleSrc(business, "during: business\n        when_closed: drop\n        cooldown: {key: '{{ .visitor.email_id }}', for: 1h}"), nil)
	r := rt.Rules[0].Routes[0]
	if !r.DropClosed || r.Cooldown == nil || r.Cooldown.For != time.Hour || r.Scope("sad") != "sad/0" {
		t.Fatalf("route: drop %v, cooldown %+v; want drop, a 1h cooldown", r.DropClosed, r.Cooldown)
	}
	for window, want := range map[string]string{
		"when_closed: drop":                               "rules[0].to[0].when_closed: needs during or outside",
		"during: business\n        when_closed: later":    "rules[0].to[0].when_closed: want defer or drop",
		"cooldown: {key: '{{ .visitor.nmae }}', for: 1h}": `rules[0].to[0].cooldown.key: template: visitor has no field "nmae"`,
		"cooldown: {key: '{{ .visitor.name }}'}":          "rules[0].to[0].cooldown.for: must be a positive duration",
		"cooldown: {for: 1h}":                             "rules[0].to[0].cooldown.key: must be set",
		"cooldown: {key: x, for: 1h, by: y}":              `unknown key "by"`,
	} {
		if got := loadErr(t, scheduleSrc(business, window), nil); !strings.Contains(got, want) {
			t.Errorf("%s: error = %s\nwant it to contain %s", window, got, want)
		}
	}
}

func TestGroupConfig(t *testing.T) {
	src := strings.Replace(afterSrc("[]", "[]"), `    when: chat.rating == "sad"`, "    when: chat.rating == \"sad\"\n    group: {by: [visitor.email_id, chat.department_id], wait: 30s, interval: 10m}", 1)
	rt, _ := mustLoad(t, src, nil)
	g := rt.Rules[0].Group
	if g == nil || len(g.By) != 2 || g.Wait != 30*time.Second || g.Interval != 10*time.Minute || g.Max != 100 {
		t.Fatalf("group = %+v; want by two, 30s, 10m, max 100 (the default)", g)
	}
	for bad, want := range map[string]string{
		"group: {by: [visitor.emial], wait: 30s}": `rules[0].group.by[0]: type router.SalesIQPerson has no field emial`,
		"group: {wait: 30s, max: 5000}":           "rules[0].group.max: must be between 1 and 1000",
		"group: {wait: 30s, every: 1m}":           `unknown key "every"`,
	} {
		src := strings.Replace(afterSrc("[]", "[]"), `    when: chat.rating == "sad"`, "    when: chat.rating == \"sad\"\n    "+bad, 1)
		if got := loadErr(t, src, nil); !strings.Contains(got, want) {
			t.Errorf("%s: error = %s\nwant it to contain %s", bad, got, want)
		}
	}
}

func TestUnlessConfig(t *testing.T) {
	with := func(unless, delay string) string {
		src := strings.Replace(afterSrc("[]", "[]"), `    when: chat.rating == "sad"`, "    when: chat.rating == \"sad\"\n    "+unless, 1)
		return strings.Replace(src, "        after: []\n", "        "+delay+"\n", 1)
	}
	rt, _ := mustLoad(t, with(`unless: {when: 'event == "conversation.attender.updated"', same: [entity_id], within: 30m}`, "delay: 5m"), nil)
	r := rt.Rules[0]
	if r.Unless == nil || r.Unless.Within != 30*time.Minute || r.Routes[0].Delay != 5*time.Minute || r.Routes[1].Delay != 0 {
		t.Fatalf("unless %+v, delays %v, %v", r.Unless, r.Routes[0].Delay, r.Routes[1].Delay)
	}
	for _, tc := range []struct{ unless, delay, want string }{
		{`unless: {when: 'event == "x"', within: 5m}`, "delay: 1m", "rules[0].unless.same: must list at least one expression"},
		{`unless: {when: 'event == "x"', same: [entity_id], within: 0s}`, "delay: 1m", "rules[0].unless.within: must be a positive duration"},
		{`unless: {same: [entity_id], within: 5m}`, "delay: 1m", "rules[0].unless.when: must be set"},
		{`unless: {when: 'event == "x"', same: [chat.idd], within: 5m}`, "delay: 1m", `rules[0].unless.same[0]: type router.SalesIQChat has no field idd`},
		{`unless: {when: 'chat.ratng == "x"', same: [entity_id], within: 5m}`, "delay: 1m", `rules[0].unless.when: type router.SalesIQChat has no field ratng`},
		{`unless: {when: 'event == "x"', same: [entity_id], within: 5m}`, "delay: 10m", "rules[0].to[0].delay: must be at most unless.within (5m0s)"},
		{`group: {wait: 1s}`, "delay: 1m", "rules[0].to[0].delay: delay is an escalation step of a rule with unless:"},
		{`unless: {when: 'event == "x"', same: [entity_id], within: 5m}`, "delay: soon", "rules[0].to[0].delay: want a positive duration"},
	} {
		if got := loadErr(t, with(tc.unless, tc.delay), nil); !strings.Contains(got, tc.want) {
			t.Errorf("%s / %s: error = %s\nwant it to contain %s", tc.unless, tc.delay, got, tc.want)
		}
	}
}
