package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckExplainsNoiseControl: check says where each schedule stands
// and which rules send digests and which routes have a cooldown or drop
// outside their schedule.
func TestCheckExplainsNoiseControl(t *testing.T) {
	dir := t.TempDir()
	conf := `
sources:
  - {name: g, type: none}
sinks:
  - {name: c, type: log}
schedules:
  - {name: business, timezone: Europe/Berlin, weekly: ["mon-fri 09:00-18:00"]}
rules:
  - name: r
    when: "true"
    group: {by: [kind], wait: 30s, interval: 10m}
    to:
      - {sink: c, text: hi, during: business, when_closed: drop}
      - {sink: c, text: x, cooldown: {key: "{{ .kind }}", for: 1h}}
  - name: t
    when: kind == "missed"
    unless: {when: 'kind == "attended"', same: [chat], within: 30m}
    to:
      - {sink: c, text: late, delay: 5m}
`
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := cmdCheck(context.Background(), []string{"-c", path}, nil, &out, &errb); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"schedule business: ",
		"  r → c (during: business)\n",
		"rule r: digests, groups by kind; a group's first event waits 30s, one notification per 10m0s at most, listing up to 100 events\n",
		"route r → c: outside its schedule (during: business) deliveries are suppressed, not deferred\n",
		"route r → c: cooldown 1h0m0s per key value; later ones within it are suppressed\n",
		"rule t: waits 30m0s unless an event matching \"kind == \\\"attended\\\"\" with the same chat comes first\n",
		"route t → c: an escalation step at 5m0s\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}
