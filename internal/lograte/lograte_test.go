package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := New(3, time.Second)
	t0 := time.Unix(0, 0)
	for i := 0; i < 100; i++ {
		l.Log(log, t0.Add(time.Duration(i)*10*time.Millisecond), slog.LevelError, "k", "store down")
	}
	l.Log(log, t0.Add(time.Second), slog.LevelError, "other", "different")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// 3 of burst, one per second for the 0.99 s that followed (none), then
	// the other key.
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), buf.String())
	}
	buf.Reset()
	l.Log(log, t0.Add(2*time.Second), slog.LevelError, "k", "store down")
	if !strings.Contains(buf.String(), "suppressed=97") {
		t.Fatalf("next allowed line %q lacks the suppressed count 97", buf.String())
	}
}
