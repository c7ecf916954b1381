package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hookroute/hookroute/router"
)

func TestLogConfig(t *testing.T) {
	s := mustBuild(t, "log", "{}", nil)
	if s.(*logSink).w != os.Stdout {
		t.Error("default output is not stdout")
	}
	s = mustBuild(t, "log", "output: stderr", nil)
	if s.(*logSink).w != os.Stderr {
		t.Error("output: stderr is not stderr")
	}
	_, err := build(t, "log", "output: /var/log/x", nil)
	wantConfigError(t, err, "output", "want stdout or stderr")
	_, err = build(t, "log", "file: x", nil)
	wantConfigError(t, err, "file", "unknown key")
}

func TestLogDeliver(t *testing.T) {
	s := mustBuild(t, "log", "{}", nil).(*logSink)
	var buf bytes.Buffer
	s.w = &buf
	res, err := s.Deliver(context.Background(), delivery(map[string]string{"text": "Sad chat: <b>"}))
	if err != nil || res.StatusCode != 0 || res.RemoteID != "" || res.Link != nil {
		t.Fatalf("Deliver: %v, %+v", err, res)
	}
	golden(t, "log/line.golden", buf.Bytes())
}

func TestLogLinesStayWhole(t *testing.T) {
	s := mustBuild(t, "log", "{}", nil).(*logSink)
	var buf bytes.Buffer
	s.w = &buf
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := delivery(map[string]string{"text": strings.Repeat(fmt.Sprint(i), 500)})
			if _, err := s.Deliver(context.Background(), d); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line is not JSON: %v", err)
		}
	}
}

func TestLogUnencodableEventIsPermanent(t *testing.T) {
	s := mustBuild(t, "log", "{}", nil).(*logSink)
	s.w = &bytes.Buffer{}
	d := delivery(nil)
	d.Event = map[string]any{"bad": make(chan int)}
	if _, err := s.Deliver(context.Background(), d); !router.IsPermanent(err) {
		t.Errorf("got %v, want a permanent error", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestLogWriteErrorIsRetried(t *testing.T) {
	s := mustBuild(t, "log", "{}", nil).(*logSink)
	s.w = failWriter{}
	_, err := s.Deliver(context.Background(), delivery(nil))
	if err == nil || router.IsPermanent(err) {
		t.Errorf("got %v, want a retryable error", err)
	}
}
