package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

func TestNextDelaySchedule(t *testing.T) {
	rc := config.RetryConfig{MaxAttempts: 8, Initial: config.Duration(10 * time.Second), MaxInterval: config.Duration(30 * time.Minute), Multiplier: 2, Jitter: 0.2}
	for n := 1; n <= 12; n++ {
		nominal := 10 * time.Second
		for i := 1; i < n; i++ {
			nominal *= 2
		}
		nominal = min(nominal, 30*time.Minute)
		for range 50 {
			d := NextDelay(rc, n, 0)
			lo, hi := time.Duration(float64(nominal)*0.8), time.Duration(float64(nominal)*1.2)
			if d < lo || d > hi {
				t.Fatalf("NextDelay(attempt %d) = %v, want within [%v, %v]", n, d, lo, hi)
			}
		}
	}
}

func TestNextDelayRetryAfterIsAFloor(t *testing.T) {
	rc := config.RetryConfig{MaxAttempts: 8, Initial: config.Duration(100 * time.Millisecond), MaxInterval: config.Duration(time.Second), Multiplier: 2}
	if d := NextDelay(rc, 1, 7*time.Second); d != 7*time.Second {
		t.Fatalf("NextDelay with Retry-After 7s = %v, want 7s", d)
	}
	if d := NextDelay(rc, 1, 10*time.Millisecond); d != 100*time.Millisecond {
		t.Fatalf("NextDelay with a shorter Retry-After = %v, want the backoff's 100ms", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Fri, 27 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Fri, 27 Nov 2026 09:00:00 GMT": 0,
		"999999":                        time.Hour, // capped
	}
	for in, want := range cases {
		if got := router.ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestMatchRuntimeErrorIsNotAMatch(t *testing.T) {
	src := testkit.BaseConfig + `
  - name: boom
    source: gen
    when: payload.a.b > 3
    to:
      - sink: out
        text: x
  - name: all
    when: "true"
    to:
      - sink: out
        text: x
`
	rt, _ := mustLoad(t, src, nil)
	s, _ := rt.Source("gen")
	v, err := s.Decode(&router.Incoming{Source: "gen", Body: []byte(`{"x":1}`), Headers: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	got := rt.Match("gen", v, func(rule string, err error) { failed = append(failed, rule) })
	if len(got) != 1 || got[0].Name != "all" || len(failed) != 1 || failed[0] != "boom" {
		t.Fatalf("matched %v, failed %v; want [all], [boom]", got, failed)
	}
}

func TestDeliveryID(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	a := DeliveryID(t0, "siq", "e1", "sad", 0)
	if a != DeliveryID(t0, "siq", "e1", "sad", 0) || a == DeliveryID(t0, "siq", "e1", "sad", 1) || a == DeliveryID(t0, "siq", "e2", "sad", 0) {
		t.Fatal("DeliveryID is not a function of (time, source, event, rule, route)")
	}
	// Separators keep ("ab","c") and ("a","bc") apart.
	if DeliveryID(t0, "ab", "c", "r", 0) == DeliveryID(t0, "a", "bc", "r", 0) {
		t.Fatal("DeliveryID collides across field boundaries")
	}
	// Ids sort by time, whatever their hash, to the millisecond.
	prev := DeliveryID(t0, "siq", "z", "r", 0)
	for i := 1; i < 1000; i++ {
		id := DeliveryID(t0.Add(time.Duration(i)*time.Millisecond), "siq", fmt.Sprint(i), "r", 0)
		if id <= prev {
			t.Fatalf("id at +%dms %s sorts before %s", i, id, prev)
		}
		prev = id
	}
	if len(a) != 26 || !strings.HasPrefix(a, "d_") {
		t.Errorf("id %q: want d_ and 24 base32hex characters", a)
	}
	if z := DeliveryID(time.Time{}, "s", "e", "r", 0); !strings.HasPrefix(z, "d_000000000") {
		t.Errorf("zero time: %q, want a zero time prefix", z)
	}
}
