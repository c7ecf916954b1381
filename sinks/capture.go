package sinks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// The trial run shows the exact request a sink would make without making
// it. A capture registry builds sinks as usual, but its HTTP client's
// transport records the first request of each Deliver made under a
// context from Capture and answers every request with an error: nothing
// leaves the process, and the sink's own code has built the request.

// TrialCapturer is the capture registry the admin API's trials share (main
// hands it to the router): what sinks cache between deliveries (Slack
// limiters) is harmless there, and building a registry per trial would
// only churn.
func TrialCapturer() config.Capturer { return captureRegistry() }

var captureRegistry = sync.OnceValue(NewCaptureRegistry)

// errNotSent answers every request a capture registry's client is asked
// to send.
var errNotSent = errors.New("trial: request captured, not sent")

// maxCapturedBody bounds a recorded request body; sinks cut their own
// bodies to the APIs' limits long before this.
const maxCapturedBody = 1 << 20

// captureKey is the context key of a capture slot.
type captureKey struct{}

// captureSlot holds the first request made under one Capture context.
type captureSlot struct {
	mu  sync.Mutex
	req *config.CapturedRequest
}

func (s *captureSlot) record(req *http.Request) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(req.Body, maxCapturedBody))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.req != nil {
		return // only the first: later ones follow from the canned error
	}
	s.req = &config.CapturedRequest{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone(), Body: body}
}

func (s *captureSlot) get() *config.CapturedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.req
}

// captureTransport records instead of sending.
type captureTransport struct{}

// RoundTrip records req into the slot of its context, if any, and fails.
// The stand-in accounts server's token requests are answered instead.
func (captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == captureAccountsHost {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		body := `{"access_token":"trial-capture-token","expires_in":3600}`
		return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: req}, nil
	}
	if slot, ok := req.Context().Value(captureKey{}).(*captureSlot); ok {
		slot.record(req)
	}
	if req.Body != nil {
		_ = req.Body.Close() // RoundTrip must close it, even on error
	}
	return nil, errNotSent
}

// CaptureRegistry is a Registry whose sinks never reach the network:
// every HTTP request they make fails with an error, and the first one of
// each Deliver run under a context from Capture is recorded.
type CaptureRegistry struct {
	*Registry
}

var _ config.Capturer = (*CaptureRegistry)(nil)

// NewCaptureRegistry returns a CaptureRegistry.
func NewCaptureRegistry() *CaptureRegistry {
	r := NewRegistry()
	r.Client = newClient(captureTransport{})
	// Should a sink still get a client of its own from the shared
	// transport, that client cannot connect anywhere either.
	refuse := func(context.Context, string, string) (net.Conn, error) { return nil, errNotSent }
	r.shared.transport.DialContext = refuse
	r.shared.transport.DialTLSContext = refuse
	return &CaptureRegistry{r}
}

// Build implements router.SinkFactory as Registry.Build does, but ignores
// ca_file: a CA bundle matters only to connections, which a capture never
// makes, and it would give the sink a client of its own that does not
// record.
//
// A zohodesk sink gets its access token from the accounts server before
// each ticket request (and caches it process-wide, by accounts URL and
// credentials): its capture twin asks a stand-in accounts server, which
// the capture transport answers with a stand-in token, so that what is
// recorded is the ticket request, and no real token is fetched or mixed
// with stand-ins.
func (c *CaptureRegistry) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	n := *node
	n.Content = nil
	for i := 0; i+1 < len(node.Content); i += 2 {
		switch node.Content[i].Value {
		case "ca_file":
		case "accounts_url":
			if kind != "zohodesk" {
				n.Content = append(n.Content, node.Content[i], node.Content[i+1])
			}
		default:
			n.Content = append(n.Content, node.Content[i], node.Content[i+1])
		}
	}
	if kind == "zohodesk" {
		n.Content = append(n.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "accounts_url"},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "https://" + captureAccountsHost})
	}
	return c.Registry.Build(kind, name, &n)
}

// captureAccountsHost is the stand-in Zoho accounts server (.invalid never
// resolves, should anything try).
const captureAccountsHost = "accounts.trial-capture.invalid"

// Capture implements router.Capturer: it returns a context under which
// the first request a sink of c makes is recorded, and a function that
// returns it (nil if none was made).
func (c *CaptureRegistry) Capture(ctx context.Context) (context.Context, func() *config.CapturedRequest) {
	slot := &captureSlot{}
	return context.WithValue(ctx, captureKey{}, slot), slot.get
}
