package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookroute/hookroute/bench/loadgen"
	"github.com/hookroute/hookroute/router"
)

func TestBodyCodec(t *testing.T) {
	compressible := bytes.Repeat([]byte(`{"a":"b"},`), 100)
	random := make([]byte, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for _, c := range []struct {
		name  string
		body  []byte
		codec int
	}{
		{"small", []byte(`{"id":1}`), codecNone},
		{"compressible", compressible, codecDeflate},
		{"incompressible", random, codecNone},
		{"salesiq", loadgen.Body(1, 1), codecDeflate},
	} {
		stored, codec := encodeBody(c.body)
		if codec != c.codec {
			t.Errorf("%s: codec %d, want %d", c.name, codec, c.codec)
		}
		got, err := decodeBody(stored, int64(codec))
		if err != nil || !bytes.Equal(got, c.body) {
			t.Errorf("%s: round trip gave %d bytes, %v", c.name, len(got), err)
		}
	}
	if _, err := decodeBody([]byte("x"), 7); err == nil {
		t.Error("an unknown codec decoded")
	}
	if _, err := decodeBody([]byte("not deflate at all"), codecDeflate); err == nil {
		t.Error("a damaged body decoded")
	}
}

// TestStoredBytesPerEvent holds SQLite's storage to at most 2.5 KB per
// event of the benchmark's 1.4 KB SalesIQ body, its headers as a sender
// sends them, one delivery delivered and its attempt logged, indexes
// included; and checks that every body reads back whole, by GetEvent and
// by a claim.
func TestStoredBytesPerEvent(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"))
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	const n = 2000
	t0 := time.Unix(1_700_000_000, 0)
	headers := map[string]string{
		"content-type": "application/json", "content-length": "1448", "user-agent": "Zoho-SalesIQ-Webhook/1.0",
		"accept-encoding": "gzip", "x-request-id": "3f1e4c2a-9b7d-4e2f-8a61-0c5d9e7b4a13",
		// A base64 RSA-2048 signature, as SalesIQ sends it.
		"x-siqsignature": string(bytes.Repeat([]byte("eTz5Tqa8WdUrgidDo29I3zH47FL1SqpvRHzkBC0cJE=="), 8)),
	}
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = loadgen.Body(7, i)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		ev := &router.EventRecord{Source: "salesiq", ID: fmt.Sprint("conversation.rated:", i), Name: "conversation.rated",
			ReceivedAt: at, Headers: headers, Body: bodies[i], Matched: []string{"sad-chat"}}
		d := router.NewDelivery{ID: fmt.Sprintf("d_%08d", i), Rule: "sad-chat", Sink: "bench-sink", NextAttemptAt: at}
		if _, err := s.Ingest(ctx, ev, []router.NewDelivery{d}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.Claim(ctx, "bench-sink", "w", t0.Add(time.Hour), time.Minute, n)
	if err != nil || len(claimed) != n {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	for i, c := range claimed {
		if !bytes.Equal(c.Event.Body, bodies[i]) {
			t.Fatalf("claim %d: the body read back differs", i)
		}
		f := router.Finish{Status: router.StatusDelivered, Attempt: router.AttemptRecord{
			At: t0.Add(time.Hour), Duration: time.Millisecond, Outcome: router.OutcomeDelivered, StatusCode: 200}}
		if err := s.Finish(ctx, c.ID, "w", f); err != nil {
			t.Fatal(err)
		}
	}
	if ev, err := s.GetEvent(ctx, "salesiq", "conversation.rated:7"); err != nil || !bytes.Equal(ev.Body, bodies[7]) {
		t.Fatalf("GetEvent: %v, or the body differs", err)
	}
	var pages, size int64
	if err := s.r.QueryRowContext(ctx, "SELECT page_count * page_size, page_size FROM pragma_page_count, pragma_page_size").Scan(&pages, &size); err != nil {
		t.Fatal(err)
	}
	per := float64(pages) / n
	t.Logf("%.0f bytes per event (%d-byte pages)", per, size)
	if per > 2500 {
		t.Errorf("%.0f bytes per stored event, want at most 2,500", per)
	}
}
