package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hookroute/hookroute/router"
)

func init() {
	register("log",
		[]router.FieldSpec{
			// Printed as is: JSON encoding already keeps a line one line.
			{Name: "text"},
		},
		func() logConfig { return logConfig{Output: "stdout"} },
		newLogSink)
}

// logConfig configures the log sink, which prints every delivery as one
// JSON line: for demos, for debugging rules, and for piping into another
// tool.
type logConfig struct {
	// Output is where the lines go: stdout (the default) or stderr.
	Output string `yaml:"output"`
}

func (c *logConfig) validate() error {
	var p configProblems
	if c.Output != "stdout" && c.Output != "stderr" {
		p.add("output", "want stdout or stderr")
	}
	return p.err()
}

// logSink writes deliveries to w. The mutex keeps lines from concurrent
// deliveries whole.
type logSink struct {
	mu sync.Mutex
	w  io.Writer
}

var _ router.Sink = (*logSink)(nil)

func newLogSink(_ *Registry, _ string, c logConfig) (*logSink, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	w := io.Writer(os.Stdout)
	if c.Output == "stderr" {
		w = os.Stderr
	}
	return &logSink{w: w}, nil
}

// logLine is one printed delivery; the field order is the output's.
type logLine struct {
	DeliveryID string            `json:"delivery_id"`
	Rule       string            `json:"rule"`
	Sink       string            `json:"sink"`
	Attempt    int               `json:"attempt"`
	Fields     map[string]string `json:"fields"`
	Event      map[string]any    `json:"event"`
}

// Deliver prints d as one JSON line. An event that cannot be encoded never
// will be, so that error is permanent; a failed write is retried.
func (s *logSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	if err := ctx.Err(); err != nil {
		return router.Result{}, err
	}
	line := logLine{DeliveryID: d.ID, Rule: d.Rule, Sink: d.Sink, Attempt: d.Attempt, Fields: d.Fields, Event: d.Event}
	if line.Fields == nil {
		line.Fields = map[string]string{}
	}
	if line.Event == nil {
		line.Event = map[string]any{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // people read these lines: keep <, > and & as typed
	if err := enc.Encode(line); err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("log: encode delivery: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b.Bytes()); err != nil {
		return router.Result{}, fmt.Errorf("log: write: %w", err)
	}
	return router.Result{}, nil
}
