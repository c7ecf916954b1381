package router

// The trial run (DESIGN.md §2, §5): which rules an event matches and why
// the others do not, and the exact request each matched route's sink would
// make, without sending it; or, asked to send, real deliveries through the
// real sinks that leave no trace in the store (no event, no delivery, no
// dedup key).

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"gopkg.in/yaml.v3"
)

// CapturedRequest is an HTTP request as a sink made it, recorded instead
// of sent.
type CapturedRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Capturer builds sinks whose HTTP requests are recorded rather than sent,
// so that a trial shows the request a sink's own code makes. Package sinks
// provides one (sinks.NewCaptureRegistry).
type Capturer interface {
	SinkFactory
	// Capture returns a context under which the first HTTP request a
	// capturing sink makes is recorded (and answered with an error, so
	// nothing leaves the process), and a function returning that request,
	// nil if none was made. It returns a nil function when this factory's
	// sinks would really send: the trial then shows no request.
	Capture(ctx context.Context) (context.Context, func() *CapturedRequest)
}

var trialCapturer struct {
	sync.Mutex
	new func() Capturer
}

// SetTrialCapturer sets what POST /api/trial builds its capturing sinks
// with. Package sinks calls it when it is linked in, the way database
// drivers register themselves, so that the router needs no import of it.
func SetTrialCapturer(f func() Capturer) {
	trialCapturer.Lock()
	trialCapturer.new = f
	trialCapturer.Unlock()
}

func defaultCapturer() Capturer {
	trialCapturer.Lock()
	defer trialCapturer.Unlock()
	if trialCapturer.new == nil {
		return nil
	}
	return trialCapturer.new()
}

// TrialInput is the event a trial runs on.
type TrialInput struct {
	// Source names the configured source; "" means the only one.
	Source string
	// Payload is the JSON body as the sender would post it.
	Payload []byte
	// Headers are request headers (any case), for generic sources that
	// name or identify events by them (GitHub's X-GitHub-Event).
	Headers map[string]string
	// Send delivers for real through the sinks of TrialOptions.Sinks.
	Send bool
}

// TrialOptions say how a trial renders and sends.
type TrialOptions struct {
	// Capture builds the sinks that render requests; nil shows no request
	// (fields only).
	Capture Capturer
	// Sinks are the live sinks a Send delivers through; nil: the
	// runtime's own.
	Sinks map[string]*SinkRuntime
	// Now is the clock (received_at of the event); default time.Now.
	Now func() time.Time
	// SigningKey returns the key a secured sink signs with (the router's
	// keyring); nil: a Send to a secured sink fails, since an unsigned
	// request must never go out.
	SigningKey func(ctx context.Context, sink string) (*rsa.PrivateKey, error)
}

// TrialResult is the answer of POST /api/trial, field for field.
type TrialResult struct {
	Source    string       `json:"source"`
	EventName string       `json:"event_name"`
	EventID   string       `json:"event_id"`
	Send      bool         `json:"send"`
	Rules     []TrialRule  `json:"rules"`
	Routes    []TrialRoute `json:"routes"`
}

// TrialRule says whether a rule matched, and why.
type TrialRule struct {
	Name    string `json:"name"`
	Matched bool   `json:"matched"`
	// Explanation has one line per comparison and boolean step of the
	// rule's when, in evaluation order, e.g.
	// chat.rating == "sad" → "happy" == "sad" → false.
	Explanation []string `json:"explanation"`
	// Error is the run-time error that made the rule count as not
	// matched, "" if none.
	Error string `json:"error"`
}

// TrialRoute is one route of a matched rule.
type TrialRoute struct {
	Rule  string `json:"rule"`
	Route int    `json:"route"`
	Sink  string `json:"sink"`
	Kind  string `json:"kind"`
	// Request is the HTTP request the sink would make, secrets redacted;
	// nil for sinks that do not speak HTTP (log) or when none was made.
	Request *TrialRequest `json:"request"`
	// Fields are the route's rendered message fields.
	Fields map[string]string `json:"fields"`
	// DedupKey is the rendered dedup_key, if the route has one. A trial
	// neither looks it up nor records it.
	DedupKey string `json:"dedup_key,omitempty"`
	// Error says why no delivery would be made (a template that fails, a
	// sink that is switched off or refuses the fields), "" if none.
	Error string `json:"error"`
	// Result is what the sink answered a real send; nil without one.
	Result *TrialSendResult `json:"result"`
}

// TrialRequest is a rendered HTTP request.
type TrialRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// TrialSendResult is the outcome of one real trial delivery.
type TrialSendResult struct {
	StatusCode int    `json:"status_code"`
	RemoteID   string `json:"remote_id"`
	Error      string `json:"error"`
}

// TrialError is a trial that cannot run: an unknown source, or a payload
// that does not decode.
type TrialError struct{ Msg string }

// Error returns the message.
func (e *TrialError) Error() string { return e.Msg }

// Trial runs the rules on in's event. Without Send it delivers nothing:
// requests are rendered through o.Capture's sinks. With Send, each route
// of a matched rule is delivered once through o.Sinks (one attempt with
// the sink's timeout, delivery id "trial-…", no dedup key), and nothing is
// written to the store either way.
func (rt *Runtime) Trial(ctx context.Context, in TrialInput, o TrialOptions) (*TrialResult, error) {
	src, err := rt.trialSource(in.Source)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sinks == nil {
		o.Sinks = rt.Sinks
	}
	headers := make(map[string]string, len(in.Headers))
	for k, v := range in.Headers {
		if k = strings.ToLower(k); !droppedHeaders[k] {
			headers[k] = v
		}
	}
	view, err := src.Decode(&Incoming{Source: src.Name, Headers: headers, Body: in.Payload, ReceivedAt: o.Now()})
	if err != nil {
		return nil, &TrialError{Msg: fmt.Sprintf("the event does not decode as a %s event (the router would quarantine it): %v", src.Type, err)}
	}
	res := &TrialResult{Source: src.Name, EventName: view.Name, EventID: view.ID, Send: in.Send, Rules: []TrialRule{}, Routes: []TrialRoute{}}
	var matched []*Rule
	for _, r := range rt.Rules {
		tr := rt.trialRule(r, src, view)
		res.Rules = append(res.Rules, tr)
		if tr.Matched {
			matched = append(matched, r)
		}
	}
	rt.trialRoutes(ctx, res, matched, view, in.Send, o)
	return res, nil
}

func (rt *Runtime) trialSource(name string) (*Source, error) {
	if name == "" {
		if len(rt.Sources) == 1 {
			return rt.Sources[0], nil
		}
		names := make([]string, len(rt.Sources))
		for i, s := range rt.Sources {
			names[i] = s.Name
		}
		return nil, &TrialError{Msg: "name a source: the config has " + strings.Join(names, ", ")}
	}
	s, ok := rt.Source(name)
	if !ok {
		return nil, &TrialError{Msg: fmt.Sprintf("no source %q in the config", name)}
	}
	return s, nil
}

// whenOf returns the when: text of the named rule.
func (rt *Runtime) whenOf(rule string) string {
	for _, rc := range rt.Config.Rules {
		if rc.Name == rule {
			return rc.When
		}
	}
	return ""
}

func (rt *Runtime) trialRule(r *Rule, src *Source, view *View) TrialRule {
	tr := TrialRule{Name: r.Name, Explanation: []string{}}
	p := r.progs[src.Name]
	if p == nil {
		tr.Explanation = append(tr.Explanation, fmt.Sprintf("the rule is for source %q only", r.Source))
		return tr
	}
	out, err := expr.Run(p, view.Env)
	if err != nil {
		tr.Error = exprMessage(err, true)
	} else {
		tr.Matched, _ = out.(bool)
	}
	tr.Explanation = ExplainWhen(rt.whenOf(r.Name), src.adapter.env(), view.Env, out, err)
	return tr
}

// trialRoutes renders (and, with send, delivers) every route of the
// matched rules.
func (rt *Runtime) trialRoutes(ctx context.Context, res *TrialResult, matched []*Rule, view *View, send bool, o TrialOptions) {
	var capture *captureSinks
	if o.Capture != nil && len(matched) > 0 {
		needed := map[string]bool{}
		for _, rule := range matched {
			for _, route := range rule.Routes {
				needed[route.Sink] = true
			}
		}
		capture = rt.buildCaptureSinks(o.Capture, needed)
	}
	type pending struct {
		i int
		d *Delivery
	}
	var sends []pending
	for _, rule := range matched {
		for _, route := range rule.Routes {
			tr := TrialRoute{Rule: rule.Name, Route: route.Index, Sink: route.Sink, Fields: map[string]string{}}
			sr := rt.Sinks[route.Sink]
			if sr != nil {
				tr.Kind = sr.Kind
			}
			d, err := trialDelivery(rule, route, view)
			if d != nil {
				tr.Fields = d.Fields
				tr.DedupKey = d.DedupKey
			}
			switch {
			case err != nil:
				tr.Error = err.Error()
			case sr == nil:
				tr.Error = fmt.Sprintf("sink %q is not in the config", route.Sink)
			case sr.Disabled:
				tr.Error = "the sink is switched off (it is optional, and a variable it needs is empty): no delivery would be made"
			default:
				if capture != nil {
					tr.Request, tr.Error = capture.render(ctx, sr, copyDelivery(d))
				}
				if send && tr.Error == "" {
					sends = append(sends, pending{len(res.Routes), copyDelivery(d)})
				}
			}
			res.Routes = append(res.Routes, tr)
		}
	}
	// In parallel, as the workers would: one slow sink must not hold up
	// the others' answers.
	var wg sync.WaitGroup
	for _, s := range sends {
		tr := &res.Routes[s.i]
		var red *redactor
		if capture != nil {
			red = capture.redactors[tr.Sink]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.Result = trialSend(ctx, o.Sinks[tr.Sink], s.d, red, o.SigningKey)
		}()
	}
	wg.Wait()
}

// trialDelivery renders a route as the worker would, with a trial id. The
// dedup key is rendered for show only: copyDelivery takes it off before a
// sink sees the delivery.
func trialDelivery(rule *Rule, route *Route, view *View) (*Delivery, error) {
	d := &Delivery{ID: trialID(), Rule: rule.Name, Sink: route.Sink, Attempt: 1, Event: view.Data, Fields: map[string]string{}}
	for _, f := range route.Fields {
		s, err := f.render(view.Data)
		if err != nil {
			return d, fmt.Errorf("render %s: %w", f.name, err)
		}
		d.Fields[f.name] = s
	}
	if route.DedupKey != nil {
		s, err := route.DedupKey.render(view.Data)
		if err != nil {
			return d, fmt.Errorf("render dedup_key: %w", err)
		}
		d.DedupKey = strings.TrimSpace(s)
	}
	return d, nil
}

// copyDelivery gives each Deliver its own delivery, with a fresh id and
// without the dedup key: a trial must neither follow up on the object a
// key names nor leave a mark (a label, a correlation id) that a later real
// delivery with the key would take for its own.
func copyDelivery(d *Delivery) *Delivery {
	c := *d
	c.ID, c.DedupKey, c.RemoteID = trialID(), "", ""
	c.Fields = make(map[string]string, len(d.Fields))
	for k, v := range d.Fields {
		c.Fields[k] = v
	}
	return &c
}

func trialID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "trial-" + hex.EncodeToString(b)
}

// trialSend makes one real attempt, paced like the workers' (Slack's
// per-channel budget is shared with them), within the sink's timeout.
func trialSend(ctx context.Context, sr *SinkRuntime, d *Delivery, red *redactor, signingKey func(context.Context, string) (*rsa.PrivateKey, error)) *TrialSendResult {
	if sr == nil || sr.Sink == nil || sr.Disabled {
		return &TrialSendResult{Error: "the sink is not running"}
	}
	ctx, cancel := context.WithTimeout(ctx, sr.Timeout)
	defer cancel()
	if isSecured(sr.Sink) {
		if signingKey == nil {
			return &TrialSendResult{Error: "the sink is secured and its signing keys are in the router's store: run this trial through the admin API (POST /api/trial)"}
		}
		key, err := signingKey(ctx, sr.Name)
		if err != nil {
			return &TrialSendResult{Error: "not sent: no signing key: " + err.Error()}
		}
		d.SigningKey = key
	}
	if pc, ok := sr.Sink.(Paced); ok {
		if err := pc.Limiter().Wait(ctx); err != nil {
			return &TrialSendResult{Error: "waiting for the sink's rate limit: " + err.Error()}
		}
	}
	res, err := sr.Sink.Deliver(ctx, d)
	out := &TrialSendResult{StatusCode: res.StatusCode, RemoteID: res.RemoteID}
	if err != nil {
		out.Error = red.text(err.Error())
	}
	return out
}

// captureSinks are the config's sinks built by a Capturer, with what to
// redact from each one's requests.
type captureSinks struct {
	c         Capturer
	sinks     map[string]Sink
	errs      map[string]string
	redactors map[string]*redactor
}

// buildCaptureSinks builds the needed sinks of the config again with the
// capturer, from the same (expanded) YAML, so that each sink's own code
// renders the request. Sinks are cheap to build; a trial is rare.
func (rt *Runtime) buildCaptureSinks(c Capturer, needed map[string]bool) *captureSinks {
	cs := &captureSinks{c: c, sinks: map[string]Sink{}, errs: map[string]string{}, redactors: map[string]*redactor{}}
	for i := range rt.Config.Sinks {
		node := &rt.Config.Sinks[i]
		var name, kind string
		rest := &yaml.Node{Kind: yaml.MappingNode, Line: node.Line, Column: node.Column}
		for j := 0; j+1 < len(node.Content); j += 2 {
			k, v := node.Content[j], node.Content[j+1]
			switch {
			case k.Value == "name":
				name = v.Value
			case k.Value == "type":
				kind = v.Value
			case !sinkCommonKeys[k.Value]:
				rest.Content = append(rest.Content, k, v)
			}
		}
		sr := rt.Sinks[name]
		if sr == nil || sr.Disabled || !needed[name] {
			continue
		}
		cs.redactors[name] = newRedactor(envValues(rest))
		s, err := c.Build(kind, name, rest)
		if err != nil {
			cs.errs[name] = "cannot build the sink to render its request: " + cs.redactors[name].text(err.Error())
			continue
		}
		cs.sinks[name] = s
	}
	return cs
}

// render runs the capturing sink on d and returns the request it made,
// redacted, or why it made none.
func (cs *captureSinks) render(ctx context.Context, sr *SinkRuntime, d *Delivery) (*TrialRequest, string) {
	if sr.Kind == "log" {
		return nil, "" // no request: the fields are what it prints
	}
	if msg, ok := cs.errs[sr.Name]; ok {
		return nil, msg
	}
	s := cs.sinks[sr.Name]
	if s == nil {
		return nil, ""
	}
	cctx, captured := cs.c.Capture(ctx)
	if captured == nil {
		return nil, ""
	}
	cctx, cancel := context.WithTimeout(cctx, sr.Timeout)
	defer cancel()
	if isSecured(s) {
		// The real key stays where it is: a stand-in signs, and the
		// signature is not shown.
		d.SigningKey = placeholderKey()
	}
	_, err := s.Deliver(cctx, d)
	red := cs.redactors[sr.Name]
	req := captured()
	if req == nil {
		if err != nil {
			// The sink refused before sending (a required field renders
			// empty, a value it cannot use): the real delivery would fail
			// the same way.
			return nil, red.text(err.Error())
		}
		return nil, ""
	}
	return red.request(req), ""
}

// redactedValue replaces secrets in trial output.
const redactedValue = "<redacted>"

// redactor hides a sink's secrets: every value its config took from the
// environment (${VAR}), in the forms a request may carry it.
type redactor struct{ secrets []string }

func newRedactor(values []string) *redactor {
	seen := map[string]bool{}
	r := &redactor{}
	for _, v := range values {
		// Very short values protect nothing and replacing them would
		// garble the output.
		if len(v) < 4 {
			continue
		}
		j, _ := json.Marshal(v)
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v), string(j[1 : len(j)-1]), base64.StdEncoding.EncodeToString([]byte(v))} {
			if !seen[f] {
				seen[f] = true
				r.secrets = append(r.secrets, f)
			}
		}
	}
	// Longest first: a secret that contains another goes whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

func (r *redactor) text(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redactedValue)
	}
	return s
}

// credentialHeaders are shown redacted whatever their value.
var credentialHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true}

// signatureHeaders hold signatures over the body, which a rendered request
// cannot show: they are made with the sink's key, per attempt.
var signatureHeaders = map[string]bool{"X-Siqsignature": true, "Webhook-Signature": true}

// signatureShown stands for a signature in a rendered request.
const signatureShown = "<signature, made when sent>"

// placeholderKey signs rendered requests of secured sinks; made once, on
// first use, since RSA key generation takes a while.
var placeholderKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("router: generate a placeholder RSA key: " + err.Error())
	}
	return k
})

func (r *redactor) request(c *CapturedRequest) *TrialRequest {
	out := &TrialRequest{Method: c.Method, URL: r.text(c.URL), Headers: map[string]string{}, Body: r.text(utf8Body(c.Body))}
	for k, vs := range c.Header {
		k = http.CanonicalHeaderKey(k)
		if credentialHeaders[k] {
			out.Headers[k] = redactedValue
			continue
		}
		if signatureHeaders[k] {
			out.Headers[k] = signatureShown
			continue
		}
		out.Headers[k] = r.text(strings.Join(vs, ", "))
	}
	return out
}

// envValues returns the values of the scalars under n that came from a
// ${VAR} reference (ExpandEnv marks them).
func envValues(n *yaml.Node) []string {
	var out []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Style&envRef != 0 && n.Value != "" {
			out = append(out, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// ---- explanations ----

// maxExplainLines bounds an explanation: a huge when is explained in part.
const maxExplainLines = 64

// ExplainWhen explains how the rule expression src evaluated on an
// event: one line per comparison (its operands' values and its result)
// and per boolean step (which side decided), in evaluation order. env is
// what the rule was compiled against, run the event's environment, and
// out, runErr what the compiled rule gave. Each sub-expression is compiled
// and run on its own, with the options the rule was compiled with; if any
// of that fails the explanation falls back to the overall result.
func ExplainWhen(src string, env, run any, out any, runErr error) []string {
	overall := []string{fmt.Sprintf("%s → %s", strings.TrimSpace(src), formatResult(out, runErr))}
	if src == "" {
		return overall
	}
	lines, ok := explainLines(src, env, run)
	if !ok || len(lines) == 0 {
		return overall
	}
	return lines
}

func explainLines(src string, env, run any) (lines []string, ok bool) {
	defer func() {
		if recover() != nil { // a printer or checker corner case: fall back
			lines, ok = nil, false
		}
	}()
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, false
	}
	x := &explainer{env: env, run: run, progs: map[string]evalResult{}}
	x.explain(tree.Node)
	if x.failed {
		return nil, false
	}
	if x.cut {
		x.lines = append(x.lines, "… (explanation cut short)")
	}
	return x.lines, true
}

type evalResult struct {
	v   any
	err error
}

type explainer struct {
	env, run any
	lines    []string
	progs    map[string]evalResult // by sub-expression text
	failed   bool                  // a sub-expression did not compile
	cut      bool
}

func (x *explainer) add(format string, args ...any) {
	if len(x.lines) >= maxExplainLines {
		x.cut = true
		return
	}
	x.lines = append(x.lines, fmt.Sprintf(format, args...))
}

// eval compiles n's text with the rule's options (minus the bool result
// type: an operand may be anything) and runs it on the event.
func (x *explainer) eval(n ast.Node) (any, error) {
	s := n.String()
	if r, ok := x.progs[s]; ok {
		return r.v, r.err
	}
	opts := []expr.Option{expr.Env(x.env), expr.MaxNodes(2000)}
	if _, generic := x.env.(map[string]any); generic {
		opts = append(opts, expr.AllowUndefinedVariables())
	}
	p, err := expr.Compile(s, opts...)
	if err != nil {
		x.failed = true
		return nil, err
	}
	v, err := expr.Run(p, x.run)
	x.progs[s] = evalResult{v, err}
	return v, err
}

// isLogical reports whether op is a boolean connective.
func isLogical(op string) (and, ok bool) {
	switch op {
	case "&&", "and":
		return true, true
	case "||", "or":
		return false, true
	}
	return false, false
}

// explain adds the lines for n, children first, and returns n's value.
func (x *explainer) explain(n ast.Node) (any, error) {
	if x.failed || x.cut {
		return nil, nil // nothing more will be shown: spare the compiles
	}
	switch n := n.(type) {
	case *ast.BinaryNode:
		if and, ok := isLogical(n.Operator); ok {
			return x.logical(n, and)
		}
		l, lerr := x.eval(n.Left)
		r, rerr := x.eval(n.Right)
		v, err := x.eval(n)
		x.add("%s → %s %s %s → %s", n, formatOperand(l, lerr), n.Operator, formatOperand(r, rerr), formatResult(v, err))
		return v, err
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			if _, err := x.explain(n.Node); err != nil {
				x.add("%s → %s", n, formatResult(nil, err))
				return nil, err
			}
			v, err := x.eval(n)
			x.add("%s → %s", n, formatResult(v, err))
			return v, err
		}
	case *ast.ConditionalNode:
		c, err := x.explain(n.Cond)
		if err != nil {
			x.add("%s → %s", n, formatResult(nil, err))
			return nil, err
		}
		branch := n.Exp2
		if b, _ := c.(bool); b {
			branch = n.Exp1
		}
		x.explain(branch)
		v, err := x.eval(n)
		x.add("%s → %s", n, formatResult(v, err))
		return v, err
	case *ast.CallNode:
		return x.call(n, n.Callee.String(), n.Arguments)
	case *ast.BuiltinNode:
		return x.call(n, n.Name, n.Arguments)
	}
	v, err := x.eval(n)
	x.add("%s → %s", n, formatResult(v, err))
	return v, err
}

// logical explains && and ||, saying which side decided. The right side
// is explained only when it was evaluated: expr short-circuits, and a
// right side guarded by the left may fail on its own.
func (x *explainer) logical(n *ast.BinaryNode, and bool) (any, error) {
	l, err := x.explain(n.Left)
	if x.cut {
		return nil, nil
	}
	if err != nil {
		x.add("%s → %s", n, formatResult(nil, err))
		return nil, err
	}
	lb, isBool := l.(bool)
	if isBool && lb != and {
		v, err := x.eval(n)
		x.add("%s → %s: the left side is %t, so the right side is not evaluated", n, formatResult(v, err), lb)
		return v, err
	}
	r, rerr := x.explain(n.Right)
	v, err := x.eval(n)
	switch rb, ok := r.(bool); {
	case rerr != nil || err != nil:
		x.add("%s → %s", n, formatResult(v, err))
	case isBool && ok:
		x.add("%s → %s: the left side is %t, so the right side (%t) decides", n, formatResult(v, err), lb, rb)
	default:
		x.add("%s → %s", n, formatResult(v, err))
	}
	return v, err
}

// call explains a function call with its arguments' values, unless an
// argument is a predicate (any, all, filter …), whose # only means
// something inside the call.
func (x *explainer) call(n ast.Node, name string, args []ast.Node) (any, error) {
	vals := make([]string, len(args))
	for i, a := range args {
		if _, pred := a.(*ast.PredicateNode); pred {
			vals = nil
			break
		}
		v, err := x.eval(a)
		vals[i] = formatOperand(v, err)
	}
	v, err := x.eval(n)
	if vals == nil || len(args) == 0 {
		x.add("%s → %s", n, formatResult(v, err))
	} else {
		x.add("%s → %s(%s) → %s", n, name, strings.Join(vals, ", "), formatResult(v, err))
	}
	return v, err
}

// maxValueRunes bounds a value quoted in an explanation.
const maxValueRunes = 80

// formatOperand shows a value as expr would write it: strings quoted, nil
// as nil, collections as JSON; an error as "error: …".
func formatOperand(v any, err error) string {
	if err != nil {
		return "(error: " + exprMessage(err, false) + ")"
	}
	var s string
	switch t := v.(type) {
	case nil:
		return "nil"
	case string:
		s = strconv.Quote(t)
	case time.Time:
		s = strconv.Quote(t.UTC().Format(time.RFC3339Nano))
	case bool, int, int64, float64, float32, int32, uint, uint64:
		s = fmt.Sprint(t)
	default:
		rv := reflect.ValueOf(v)
		if k := rv.Kind(); k == reflect.Map || k == reflect.Slice || k == reflect.Array || k == reflect.Struct {
			if b, jerr := json.Marshal(v); jerr == nil {
				s = string(b)
				break
			}
		}
		s = fmt.Sprint(v)
	}
	return truncateRunes(s, maxValueRunes)
}

func formatResult(v any, err error) string {
	if err != nil {
		return "error: " + exprMessage(err, false)
	}
	return formatOperand(v, nil)
}

// exprMessage is an expr error's message on one line; withPos keeps its
// (line:col), which only means something for the whole rule.
func exprMessage(err error, withPos bool) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if withPos && fe.Line > 0 {
			return fmt.Sprintf("%s (%d:%d)", fe.Message, fe.Line, fe.Column+1)
		}
		return fe.Message
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// ---- admin API ----

// registerTrialRoutes adds POST /api/trial and GET /api/trial/samples.
func registerTrialRoutes(api func(pattern, scope string, h http.HandlerFunc), r *Router) {
	api("POST /api/trial", "trial", r.apiTrial)
	api("GET /api/trial/samples", "trial", r.apiTrialSamples)
}

// trialRequest is the body of POST /api/trial.
type trialRequest struct {
	Source  string            `json:"source"`
	Event   json.RawMessage   `json:"event"`
	Send    bool              `json:"send"`
	Headers map[string]string `json:"headers"`
}

func (r *Router) apiTrial(w http.ResponseWriter, req *http.Request) {
	rt := r.rt.Load()
	// The event may be as large as an ingested one, plus the envelope.
	limit := int64(rt.Config.Server.MaxBody) + 64<<10
	var b trialRequest
	dec := json.NewDecoder(io.LimitReader(req.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		httpError(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	if len(b.Event) == 0 || string(b.Event) == "null" {
		httpError(w, http.StatusBadRequest, "invalid body: event (the webhook payload) is missing")
		return
	}
	res, err := rt.Trial(req.Context(), TrialInput{Source: b.Source, Payload: b.Event, Headers: b.Headers, Send: b.Send},
		TrialOptions{Capture: defaultCapturer(), Now: r.now, SigningKey: r.trialSigningKey})
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	matched := 0
	for _, rl := range res.Rules {
		if rl.Matched {
			matched++
		}
	}
	r.log.Info("trial run", "by", tokenName(req), "source", res.Source, "event", res.EventName, "send", res.Send, "matched", matched, "routes", len(res.Routes))
	for _, rr := range res.Routes {
		if rr.Result != nil {
			lv := slog.LevelInfo
			if rr.Result.Error != "" {
				lv = slog.LevelWarn
			}
			r.log.Log(req.Context(), lv, "trial delivery sent (not recorded)", "by", tokenName(req), "rule", rr.Rule, "sink", rr.Sink,
				"status_code", rr.Result.StatusCode, "remote_id", rr.Result.RemoteID, "err", rr.Result.Error)
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// utf8Body is body as text for JSON: invalid UTF-8 would be mangled
// silently, so it is marked instead.
func utf8Body(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("(%d bytes of binary data)", len(b))
}

// trialSigningKey reads a secured sink's key as the worker does (the
// keyring only reads the store).
func (r *Router) trialSigningKey(ctx context.Context, sink string) (*rsa.PrivateKey, error) {
	if r.keys == nil {
		return nil, errors.New("signing keys are not available")
	}
	_, key, err := r.keys.get(ctx, sink)
	return key, err
}
