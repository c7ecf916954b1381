package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/schedule"
	"github.com/hookroute/hookroute/router/source"
	"github.com/hookroute/hookroute/router/verify"
)

// Runtime is a loaded, fully compiled config: what serve runs and what a
// reload swaps atomically.
type Runtime struct {
	File    string
	Config  *config.Config
	Sources []*Source
	Sinks   map[string]*SinkRuntime
	Rules   []*Rule
	// Schedules are the config's schedules by name.
	Schedules map[string]*schedule.Schedule
	Warnings  []string // problems that do not stop the router (printed by check)

	byPath map[string]*Source
	// dropHeaders are server.drop_headers, lower-cased (see DropsHeader).
	dropHeaders map[string]bool
}

// Source is a compiled webhook source.
type Source struct {
	Name string
	Type string
	// Kind is what Type names: the source's scheme and view.
	Kind     *source.Kind
	Path     string
	Verifier verify.Verifier
	adapter  source.Adapter
	// config is what the source was compiled from, for what its kind
	// decides after compiling: its trial samples, how send signs.
	config *config.SourceConfig
	// eventProg and idProg are the event: and id: expressions of generic
	// sources.
	eventProg, idProg *vm.Program
	// eventDefault is set when eventProg is the scheme's default, not the
	// config's.
	eventDefault bool
}

// Adapter is the source's event view.
func (s *Source) Adapter() source.Adapter { return s.adapter }

// SourceConfig is what the source was compiled from.
func (s *Source) SourceConfig() *config.SourceConfig { return s.config }

// SinkRuntime is a configured sink with its delivery settings.
type SinkRuntime struct {
	Name        string
	Kind        string
	Sink        router.Sink
	Timeout     time.Duration
	Retry       config.RetryConfig
	Concurrency int
	PauseAfter  int
	PauseProbe  time.Duration
	// Disabled is set for an optional sink whose credentials are empty:
	// routes to it create no deliveries.
	Disabled bool
}

// Rule is a compiled routing rule.
type Rule struct {
	Name   string
	Source string // "" for every source
	// progs holds the when: program per source, since each source type has
	// its own typed view.
	progs  map[string]*vm.Program
	Routes []*Route
	// Group, when set, sends digests: see Group.
	Group *Group
	// Unless, when set, makes the rule's deliveries timers: see Unless.
	Unless *Unless
}

// Unless is a rule's timer: its deliveries wait Within (a route's Delay,
// for an escalation step), and are cancelled by a later event, from any
// source, that matches When and has the first event's values of Same.
type Unless struct {
	When   string
	Same   []string
	Within time.Duration
	when   map[string]*vm.Program   // per source
	same   map[string][]*vm.Program // per source, one per Same
}

// Cancels reports whether the event in view, from source, matches When.
func (u *Unless) Cancels(source string, view *router.View) (bool, error) {
	p := u.when[source]
	// An ignored event matches nothing, unless.when included: the bot's
	// own reply must not cancel the reminder that it is waited for.
	if p == nil || view.Ignored != "" {
		return false, nil
	}
	out, err := expr.Run(p, view.Env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Key is the timer key of the rule for the event in view, from source:
// the rule's name and the values of Same, as JSON, so that equal values
// from either side make equal keys (a number 42 and the string "42" do
// not).
func (u *Unless) Key(rule, source string, view *router.View) (string, error) {
	progs := u.same[source]
	if len(progs) != len(u.Same) {
		return "", fmt.Errorf("unless.same does not compile for source %q", source)
	}
	vals := make([]any, 0, len(progs)+1)
	vals = append(vals, rule)
	for i, p := range progs {
		v, err := expr.Run(p, view.Env)
		if err != nil {
			return "", fmt.Errorf("unless.same[%d]: %w", i, err)
		}
		vals = append(vals, v)
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return "", fmt.Errorf("unless.same: %w", err)
	}
	return string(b), nil
}

// Group is a rule's grouping: its routes send one notification per
// group of events that share the values of By, after Wait, at most one
// per Interval, listing at most Max events.
type Group struct {
	By       []string
	Wait     time.Duration
	Interval time.Duration
	Max      int
	progs    map[string][]*vm.Program // per source, one per By
}

// Key is the group key of the event in view, from source: the By
// expressions' values, as "expr=value" joined by ", "; "" for a rule
// with no By (one group).
func (g *Group) Key(source string, view *router.View) (string, error) {
	progs := g.progs[source]
	parts := make([]string, 0, len(progs))
	for i, p := range progs {
		v, err := expr.Run(p, view.Env)
		if err != nil {
			return "", fmt.Errorf("group.by[%d]: %w", i, err)
		}
		if v == nil {
			v = ""
		}
		parts = append(parts, fmt.Sprintf("%s=%v", g.By[i], v))
	}
	return strings.Join(parts, ", "), nil
}

// Cooldown is a route's cooldown: one delivery per rendered Key value
// per For.
type Cooldown struct {
	Key *fieldTemplate
	For time.Duration
}

// Render renders the cooldown's key for an event's view.
func (c *Cooldown) Render(data map[string]any) (string, error) { return c.Key.Render(data) }

// Scope names a route's cooldowns in the store: its rule and place.
func (r *Route) Scope(rule string) string { return fmt.Sprintf("%s/%d", rule, r.Index) }

// Window is a route's schedule: during it (Outside false) or outside it.
type Window struct {
	Schedule *schedule.Schedule
	Outside  bool
}

// Key is how the route names its window: "during: NAME" or "outside: NAME".
func (w *Window) Key() string {
	if w.Outside {
		return "outside: " + w.Schedule.Name()
	}
	return "during: " + w.Schedule.Name()
}

// Allows reports whether the route may deliver at t.
func (w *Window) Allows(t time.Time) bool { return w.Schedule.Open(t) != w.Outside }

// Next is when a delivery held back at t may go: when the schedule next
// opens (during) or closes (outside); the zero time for never.
func (w *Window) Next(t time.Time) time.Time {
	if w.Outside {
		return w.Schedule.NextClose(t)
	}
	return w.Schedule.NextOpen(t)
}

// Route is one entry of a rule's to: list.
type Route struct {
	Index    int
	Sink     string
	Fields   []*fieldTemplate
	DedupKey *fieldTemplate
	// OnExisting says what a delivery with an already-seen dedup key does:
	// comment, skip or create.
	OnExisting string
	// OnMissing says what a delivery whose dedup key has no object yet
	// does: create it, or skip (only follow up on what exists).
	OnMissing string
	// After names the sinks whose deliveries of the same event this
	// route's delivery waits for (delivered or dead), so that its
	// templates see what they created under .links.
	After []string
	// UsesLinks is set when a field template reads .links: only such
	// deliveries look the links up.
	UsesLinks bool
	// Window, when set, is the schedule the route keeps to (during: or
	// outside:): at other times its deliveries wait, or with DropClosed
	// (when_closed: drop) are suppressed.
	Window     *Window
	DropClosed bool
	// Cooldown, when set, suppresses the route's deliveries with a key
	// value one was sent with less than Cooldown.For ago.
	Cooldown *Cooldown
	// Delay, for a rule with unless:, is when this route's delivery
	// fires after the first event instead of unless.within (an
	// escalation step); 0: within.
	Delay time.Duration

	// node and path are the route's mapping and its place, for problems
	// found after it compiled.
	node *yaml.Node
	path string
}

// SourceByPath returns the source served at path.
func (rt *Runtime) SourceByPath(path string) (*Source, bool) {
	s, ok := rt.byPath[path]
	return s, ok
}

// Source returns the named source.
func (rt *Runtime) Source(name string) (*Source, bool) {
	for _, s := range rt.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Rule returns the named rule.
func (rt *Runtime) Rule(name string) (*Rule, bool) {
	for _, r := range rt.Rules {
		if r.Name == name {
			return r, true
		}
	}
	return nil, false
}

// compiler collects every problem instead of stopping at the first.
type compiler struct {
	file  string
	doc   *yaml.Node
	errs  config.ConfigErrors
	rt    *Runtime
	sinks config.SinkFactory
	// badSchedules are schedules that did not compile: a route naming
	// one is not reported again.
	badSchedules map[string]bool
}

func (c *compiler) add(e *config.ConfigError) { c.errs = append(c.errs, e) }

// errAt returns a reporter of problems with the keys of the mapping node
// at path, each at its key's value.
func (c *compiler) errAt(node *yaml.Node, path string) func(key, format string, args ...any) {
	return func(key, format string, args ...any) {
		c.add(config.NodeError(config.LookupNode(node, key), path+"."+key, format, args...))
	}
}

func compile(file string, cfg *config.Config, doc *yaml.Node, sinks config.SinkFactory) (*Runtime, config.ConfigErrors) {
	c := &compiler{file: file, doc: doc, sinks: sinks, rt: &Runtime{
		File: file, Config: cfg, Sinks: map[string]*SinkRuntime{}, byPath: map[string]*Source{},
	}}
	cfg.ValidateStatic(doc, c.add)
	for i := range cfg.Sources {
		c.source(i, &cfg.Sources[i])
	}
	c.dropHeaders()
	c.schedules()
	for i := range cfg.Sinks {
		c.sink(i, &cfg.Sinks[i])
	}
	names := map[string]bool{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if names[r.Name] {
			c.add(config.NodeError(config.LookupNode(doc, "rules", fmt.Sprint(i), "name"), fmt.Sprintf("rules[%d].name", i), "duplicate rule name %q", r.Name))
		}
		names[r.Name] = true
		c.rule(i, r)
	}
	if len(cfg.Sources) == 0 {
		c.add(config.NodeError(doc, "sources", "at least one source is needed"))
	}
	used := map[string]bool{}
	for _, r := range c.rt.Rules {
		for _, rt := range r.Routes {
			used[rt.Sink] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.rt.Sinks)) {
		if !used[name] {
			c.rt.Warnings = append(c.rt.Warnings, fmt.Sprintf("sink %q is not used by any rule", name))
		}
	}
	c.warnDroppedReads()
	c.checkAfterCycles()

	return c.rt, c.errs
}

func (c *compiler) source(i int, sc *config.SourceConfig) {
	path := fmt.Sprintf("sources[%d]", i)
	node := config.LookupNode(c.doc, "sources", fmt.Sprint(i))
	errAt := c.errAt(node, path)
	kind, ok := c.sourceKind(sc, node, path, errAt)
	if !ok {
		return
	}
	s := &Source{Name: sc.Name, Type: sc.Type, Kind: kind, Path: sc.Path, config: sc}
	if s.Path == "" {
		s.Path = "/hooks/" + sc.Name
	}
	if !strings.HasPrefix(s.Path, "/hooks/") || strings.ContainsAny(s.Path[len("/hooks/"):], "/?#") {
		errAt("path", "must be /hooks/NAME")
	} else if _, dup := c.rt.byPath[s.Path]; dup {
		errAt("path", "path %s is used by another source", s.Path)
	}
	s.Verifier = c.verifier(kind, sc, errAt)
	if kind.Typed != nil {
		s.adapter = kind.Typed(sc)
	} else {
		eventSrc := sc.Event
		if eventSrc == "" && kind.DefaultEvent != "" {
			eventSrc = kind.DefaultEvent
			s.eventDefault = true
		}
		s.eventProg = c.stringExpr(eventSrc, node, path, "event")
		s.idProg = c.stringExpr(sc.ID, node, path, "id")
		s.adapter = source.Generic{Event: s.eventProg, ID: s.idProg, IDHeader: kind.IDHeader}
	}
	c.rt.Sources = append(c.rt.Sources, s)
	c.rt.byPath[s.Path] = s
}

// sourceKind checks a source's name and type, and that it sets only keys
// its kind takes; ok is false when the source cannot be compiled further.
func (c *compiler) sourceKind(sc *config.SourceConfig, node *yaml.Node, path string, errAt func(key, format string, args ...any)) (*source.Kind, bool) {
	if !validName(sc.Name) {
		errAt("name", "must be set, of letters, digits, '-' and '_'")
		return nil, false
	}
	if _, dup := c.rt.Source(sc.Name); dup {
		errAt("name", "duplicate source name %q", sc.Name)
		return nil, false
	}
	kind, ok := source.Lookup(sc.Type)
	if !ok {
		errAt("type", "unknown source type %q (want %s)", sc.Type, orList(source.Kinds()))
		return nil, false
	}
	for j := 0; j+1 < len(node.Content); j += 2 {
		k := node.Content[j].Value
		if k != "name" && k != "type" && k != "path" && !slices.Contains(kind.Keys, k) {
			c.add(config.NodeError(node.Content[j], path+"."+k, "not a key of a %s source", sc.Type))
		}
	}
	return kind, true
}

// verifier builds a source's verifier, reporting a key's error at that
// key, and the kind's warnings about a config that builds.
func (c *compiler) verifier(kind *source.Kind, sc *config.SourceConfig, errAt func(key, format string, args ...any)) verify.Verifier {
	v, err := kind.Verifier(sc, filepath.Dir(c.file))
	var ke *source.KeyError
	switch {
	case errors.As(err, &ke):
		errAt(ke.Key, "%s", ke.Msg)
	case err != nil:
		errAt("type", "%s", err)
	}
	if err == nil && kind.Warn != nil {
		for _, w := range kind.Warn(sc, filepath.Dir(c.file)) {
			c.rt.Warnings = append(c.rt.Warnings, fmt.Sprintf("source %q %s", sc.Name, w))
		}
	}
	return v
}

// viewHeaders are the headers a source's event view takes its id or event
// name from by its kind's say: its IDHeader, and those its kind's default
// event expression reads when the config gives none. What the config's
// own expressions read is its author's choice, warned about instead (see
// warnDroppedReads).
func viewHeaders(s *Source) []string {
	var hs []string
	if s.Kind.IDHeader != "" {
		hs = append(hs, s.Kind.IDHeader)
	}
	if s.eventDefault && s.eventProg != nil {
		hs = append(hs, headersRead(s.eventProg)...)
	}
	return hs
}

// dropHeaders compiles server.drop_headers. A header a source's scheme
// reads its event id or name from may not be dropped: its events would
// silently get other ids or names, and lose the dedup the id gave them.
func (c *compiler) dropHeaders() {
	names := c.rt.Config.Server.DropHeaders
	c.rt.dropHeaders = make(map[string]bool, len(names))
	for i, h := range names {
		path := fmt.Sprintf("server.drop_headers[%d]", i)
		node := config.LookupNode(c.doc, "server", "drop_headers", fmt.Sprint(i))
		if !validHeaderName(h) {
			c.add(config.NodeError(node, path, "not a header name (letters, digits and !#$%%&'*+-.^_`|~)"))
			continue
		}
		h = strings.ToLower(h)
		for _, s := range c.rt.Sources {
			if slices.Contains(viewHeaders(s), h) {
				c.add(config.NodeError(node, path, "%s source %q takes its event id or name from %s; it cannot be dropped", s.Type, s.Name, h))
			}
		}
		c.rt.dropHeaders[h] = true
	}
}

// warnDroppedReads warns about expressions that read a dropped header:
// they see nothing, which a rule written for it may not expect.
func (c *compiler) warnDroppedReads() {
	warn := func(what string, p *vm.Program) {
		if p == nil {
			return
		}
		for _, h := range headersRead(p) {
			if c.rt.DropsHeader(h) {
				c.rt.Warnings = append(c.rt.Warnings, fmt.Sprintf("%s reads headers[%q], which is dropped (server.drop_headers): it is always empty", what, h))
			}
		}
	}
	for _, s := range c.rt.Sources {
		warn(fmt.Sprintf("source %q: id", s.Name), s.idProg)
		if !s.eventDefault {
			warn(fmt.Sprintf("source %q: event", s.Name), s.eventProg)
		}
	}
	for _, r := range c.rt.Rules {
		// One program per source, all from the same text: the first one
		// (by source name) speaks for them.
		for _, name := range slices.Sorted(maps.Keys(r.progs)) {
			warn(fmt.Sprintf("rule %q: when", r.Name), r.progs[name])
			break
		}
	}
}

// headersRead lists the names p reads as headers["name"] or headers.name.
func headersRead(p *vm.Program) []string {
	v := &headerReads{}
	n := p.Node()
	ast.Walk(&n, v)
	return v.names
}

type headerReads struct{ names []string }

func (v *headerReads) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok {
		return
	}
	if id, ok := m.Node.(*ast.IdentifierNode); !ok || id.Value != "headers" {
		return
	}
	if s, ok := m.Property.(*ast.StringNode); ok && !slices.Contains(v.names, s.Value) {
		v.names = append(v.names, s.Value)
	}
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

func (c *compiler) stringExpr(src string, node *yaml.Node, path, key string) *vm.Program {
	if src == "" {
		return nil
	}
	p, err := expr.Compile(src, expr.Env(source.GenericEnv()), expr.AllowUndefinedVariables(), expr.AsKind(reflect.String), expr.MaxNodes(1000))
	if err != nil {
		c.add(exprError(err, config.LookupNode(node, key), path+"."+key))
		return nil
	}
	return p
}

func (c *compiler) sink(i int, node *yaml.Node) {
	path := fmt.Sprintf("sinks[%d]", i)
	if node.Kind != yaml.MappingNode {
		c.add(config.NodeError(node, path, "want a mapping"))
		return
	}
	common, rest, emptyRef := splitSinkNode(node)
	d := c.rt.Config.Defaults
	retry := d.Retry
	sc := config.SinkCommon{Timeout: d.Timeout, Concurrency: d.Concurrency, Retry: &retry, PauseAfter: d.PauseAfter, PauseProbe: d.PauseProbe}
	if err := config.DecodeStrict(common, path, &sc); err != nil {
		c.errs = append(c.errs, config.AsConfigErrors(err, node, path)...)
		return
	}
	errAt := c.errAt(node, path)
	if !validName(sc.Name) {
		errAt("name", "must be set, of letters, digits, '-' and '_'")
		return
	}
	if _, dup := c.rt.Sinks[sc.Name]; dup {
		errAt("name", "duplicate sink name %q", sc.Name)
		return
	}
	c.validateSinkCommon(&sc, node, path, errAt)
	sr := &SinkRuntime{Name: sc.Name, Kind: sc.Type, Timeout: time.Duration(sc.Timeout), Retry: *sc.Retry, Concurrency: sc.Concurrency,
		PauseAfter: sc.PauseAfter, PauseProbe: time.Duration(sc.PauseProbe)}
	c.rt.Sinks[sc.Name] = sr
	if _, ok := c.sinks.RouteFields(sc.Type); !ok {
		errAt("type", "unknown sink type %q", sc.Type)
		return
	}
	if sc.Optional && emptyRef {
		sr.Disabled = true
		c.rt.Warnings = append(c.rt.Warnings, fmt.Sprintf("sink %q is switched off: a variable it needs is empty", sc.Name))
		return
	}
	s, err := c.sinks.Build(sc.Type, sc.Name, rest)
	if err != nil {
		for _, e := range config.AsConfigErrors(err, node, "") {
			e.Path = strings.TrimSuffix(path+"."+e.Path, ".")
			c.add(e)
		}
		return
	}
	sr.Sink = s
}

// splitSinkNode splits a sink's mapping into the keys every sink takes and
// its kind's own, and reports whether one of its kind's values is a
// reference that expanded to empty (an optional sink is then off).
func splitSinkNode(node *yaml.Node) (common, rest *yaml.Node, emptyRef bool) {
	common = &yaml.Node{Kind: yaml.MappingNode, Line: node.Line, Column: node.Column}
	rest = &yaml.Node{Kind: yaml.MappingNode, Line: node.Line, Column: node.Column}
	for j := 0; j+1 < len(node.Content); j += 2 {
		k, v := node.Content[j], node.Content[j+1]
		if config.SinkCommonKeys[k.Value] {
			common.Content = append(common.Content, k, v)
			continue
		}
		rest.Content = append(rest.Content, k, v)
		if v.Kind == yaml.ScalarNode && v.Style&config.EnvRef != 0 && v.Value == "" {
			emptyRef = true
		}
	}
	return common, rest, emptyRef
}

// validateSinkCommon checks the delivery settings every sink takes.
func (c *compiler) validateSinkCommon(sc *config.SinkCommon, node *yaml.Node, path string, errAt func(key, format string, args ...any)) {
	config.ValidateRetry(*sc.Retry, config.LookupNode(node, "retry"), path+".retry", c.add)
	if sc.Timeout <= 0 {
		errAt("timeout", "must be positive")
	}
	if sc.Concurrency < 1 || sc.Concurrency > 256 {
		errAt("concurrency", "must be between 1 and 256")
	}
	if sc.PauseAfter < 0 {
		errAt("pause_after", "must be 0 (never) or more")
	}
	if sc.PauseProbe <= 0 {
		errAt("pause_probe", "must be positive")
	}
}

func (c *compiler) rule(i int, rc *config.RuleConfig) {
	path := fmt.Sprintf("rules[%d]", i)
	node := config.LookupNode(c.doc, "rules", fmt.Sprint(i))
	errAt := c.errAt(node, path)
	if !validName(rc.Name) {
		errAt("name", "must be set, of letters, digits, '-' and '_'")
	}
	r := &Rule{Name: rc.Name, Source: rc.Source, progs: map[string]*vm.Program{}}
	var sources []*Source
	if rc.Source != "" {
		s, ok := c.rt.Source(rc.Source)
		if !ok {
			errAt("source", "unknown source %q", rc.Source)
			return
		}
		sources = []*Source{s}
	} else {
		sources = c.rt.Sources
	}
	if strings.TrimSpace(rc.When) == "" {
		errAt("when", "must be set (use true to match every event)")
		return
	}
	whenNode := config.LookupNode(node, "when")
	seen := map[string]bool{}
	for _, s := range sources {
		p, err := compileWhen(rc.When, s.adapter.Env())
		if err != nil {
			// Report once per distinct message: a rule for every source
			// would otherwise repeat it per source.
			e := exprError(err, whenNode, path+".when")
			if !seen[e.Msg] {
				seen[e.Msg] = true
				c.add(e)
			}
			continue
		}
		r.progs[s.Name] = p
	}
	if len(rc.To) == 0 {
		errAt("to", "a rule needs at least one route")
	}
	if rc.Group != nil {
		r.Group = c.group(rc.Group, config.LookupNode(node, "group"), path+".group", sources)
	}
	if rc.Unless != nil {
		r.Unless = c.unless(rc.Unless, config.LookupNode(node, "unless"), path+".unless", sources)
	}
	for j := range rc.To {
		if rt := c.route(path, j, &rc.To[j], sources); rt != nil {
			r.Routes = append(r.Routes, rt)
		}
	}
	for _, rt := range r.Routes {
		switch {
		case rt.Delay == 0:
		case rc.Unless == nil:
			c.add(config.NodeError(config.LookupNode(rt.node, "delay"), rt.path+".delay", "delay is an escalation step of a rule with unless:; this rule has none"))
		case rt.Delay > time.Duration(rc.Unless.Within):
			c.add(config.NodeError(config.LookupNode(rt.node, "delay"), rt.path+".delay", "must be at most unless.within (%s)", time.Duration(rc.Unless.Within)))
		}
	}
	c.rt.Rules = append(c.rt.Rules, r)
}

func compileWhen(src string, env any) (*vm.Program, error) {
	opts := []expr.Option{expr.Env(env), expr.AsBool(), expr.MaxNodes(2000)}
	if _, generic := env.(map[string]any); generic {
		opts = append(opts, expr.AllowUndefinedVariables())
	}
	return expr.Compile(src, opts...)
}

// exprError positions an expr compile error inside the config file.
func exprError(err error, node *yaml.Node, path string) *config.ConfigError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return config.NodeError(node, path, "%v", err)
	}
	e := config.NodeError(node, path, "%s", fe.Message)
	switch {
	case node == nil:
	case node.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		e.Line, e.Col = node.Line+fe.Line, 0
	default:
		e.Line = node.Line + fe.Line - 1
		e.Col = node.Column + fe.Column
		if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			e.Col++
		}
	}
	return e
}

func (c *compiler) route(rulePath string, j int, node *yaml.Node, sources []*Source) *Route {
	path := fmt.Sprintf("%s.to[%d]", rulePath, j)
	if node.Kind != yaml.MappingNode {
		c.add(config.NodeError(node, path, "want a mapping with sink: and the message fields"))
		return nil
	}
	rt := &Route{Index: j, OnExisting: "comment", OnMissing: "create", node: node, path: path}
	sinkNode := config.LookupNode(node, "sink")
	for k := 0; k+1 < len(node.Content); k += 2 {
		if node.Content[k].Value == "sink" {
			rt.Sink = node.Content[k+1].Value
		}
	}
	sr, ok := c.rt.Sinks[rt.Sink]
	if !ok {
		c.add(config.NodeError(sinkNode, path+".sink", "unknown sink %q", rt.Sink))
		return nil
	}
	specs, _ := c.sinks.RouteFields(sr.Kind)
	schema := templateSchema(sources)
	set := map[string]bool{}
	for k := 0; k+1 < len(node.Content); k += 2 {
		key, val := node.Content[k], node.Content[k+1]
		set[key.Value] = true
		c.routeKey(rt, sr, specs, schema, path+"."+key.Value, key, val)
	}
	for _, s := range specs {
		if s.Required && !set[s.Name] {
			c.add(config.NodeError(node, path, "a route to a %s sink needs %q", sr.Kind, s.Name))
		}
	}
	if set["when_closed"] && !set["during"] && !set["outside"] {
		c.add(config.NodeError(config.LookupNode(node, "when_closed"), path+".when_closed", "needs during or outside: it says what happens outside the schedule"))
	}
	if set["on_missing"] && !set["dedup_key"] {
		c.add(config.NodeError(config.LookupNode(node, "on_missing"), path+".on_missing", "needs dedup_key: it says what to do when the key has no object yet"))
	}
	if rc, ok := sr.Sink.(router.RouteChecker); ok {
		keys := map[string]string{}
		for k := 0; k+1 < len(node.Content); k += 2 {
			keys[node.Content[k].Value] = node.Content[k+1].Value
		}
		for _, p := range rc.CheckRoute(keys) {
			at := node
			if p.Key != "" {
				at = config.LookupNode(node, p.Key)
			}
			c.add(config.NodeError(at, strings.TrimSuffix(path+"."+p.Key, "."), "%s", p.Msg))
		}
	}
	return rt
}

// templateSchema is the typed view a route's templates are checked
// against: that of every source the rule can see, when they share one;
// nil otherwise (no check).
func templateSchema(sources []*Source) reflect.Type {
	if len(sources) != 1 && !allTyped(sources) {
		return nil
	}
	if env := sources[0].adapter.Env(); reflect.TypeOf(env).Kind() == reflect.Struct {
		return reflect.TypeOf(env)
	}
	return nil
}

// routeKey compiles one key of a route at kp: on_existing, on_missing,
// dedup_key, after, during, outside, when_closed, cooldown, delay or one
// of its sink's message fields.
func (c *compiler) routeKey(rt *Route, sr *SinkRuntime, specs []router.FieldSpec, schema reflect.Type, kp string, key, val *yaml.Node) {
	switch key.Value {
	case "sink":
		return
	case "on_existing":
		if !slices.Contains([]string{"comment", "skip", "create"}, val.Value) {
			c.add(config.NodeError(val, kp, "want comment, skip or create"))
		}
		rt.OnExisting = val.Value
		return
	case "on_missing":
		if !slices.Contains([]string{"create", "skip"}, val.Value) {
			c.add(config.NodeError(val, kp, "want create or skip"))
		}
		rt.OnMissing = val.Value
		return
	case "dedup_key":
		t, err := compileTemplate(key.Value, val.Value, nil, schema)
		if err != nil {
			c.add(config.NodeError(val, kp, "%v", err))
		}
		if t != nil && readsLinks(t) {
			c.add(config.NodeError(val, kp, "the dedup key cannot read .links: the links are found by it"))
		}
		rt.DedupKey = t
		return
	case "after":
		c.routeAfter(rt, kp, val)
		return
	case "when_closed":
		switch val.Value {
		case "defer":
		case "drop":
			rt.DropClosed = true
		default:
			c.add(config.NodeError(val, kp, "want defer or drop"))
		}
		return
	case "cooldown":
		rt.Cooldown = c.routeCooldown(kp, val, schema)
		return
	case "delay":
		d, err := config.ParseDuration(val.Value)
		if err != nil || d <= 0 {
			c.add(config.NodeError(val, kp, "want a positive duration such as 30m"))
			return
		}
		rt.Delay = d
		return
	case "during", "outside":
		sched, ok := c.rt.Schedules[val.Value]
		switch {
		case rt.Window != nil:
			c.add(config.NodeError(key, kp, "a route keeps to one schedule: during or outside, not both"))
		case !ok && c.badSchedules[val.Value]:
			// Reported where it is defined.
		case !ok:
			c.add(config.NodeError(val, kp, "unknown schedule %q", val.Value))
		default:
			rt.Window = &Window{Schedule: sched, Outside: key.Value == "outside"}
		}
		return
	}
	spec, ok := findSpec(specs, key.Value)
	switch {
	case !ok:
		c.add(config.NodeError(key, kp, "a route to a %s sink takes no %q (it takes: %s)", sr.Kind, key.Value, specNames(specs)))
	case val.Kind != yaml.ScalarNode:
		c.add(config.NodeError(val, kp, "want a string (a template)"))
	default:
		t, err := compileTemplate(key.Value, val.Value, spec.Escape, schema)
		if err != nil {
			c.add(config.NodeError(val, kp, "%v", err))
			return
		}
		rt.Fields = append(rt.Fields, t)
		rt.UsesLinks = rt.UsesLinks || readsLinks(t)
	}
}

// routeCooldown compiles a route's cooldown: {key: TEMPLATE, for: DURATION}.
func (c *compiler) routeCooldown(kp string, val *yaml.Node, schema reflect.Type) *Cooldown {
	var raw struct {
		Key string          `yaml:"key"`
		For config.Duration `yaml:"for"`
	}
	if err := config.DecodeStrict(val, kp, &raw); err != nil {
		c.errs = append(c.errs, config.AsConfigErrors(err, val, kp)...)
		return nil
	}
	cd := &Cooldown{For: time.Duration(raw.For)}
	ok := true
	if strings.TrimSpace(raw.Key) == "" {
		c.add(config.NodeError(val, kp+".key", "must be set: a template naming what one message is sent per (a visitor, a chat)"))
		ok = false
	} else if t, err := compileTemplate("cooldown.key", raw.Key, nil, schema); err != nil {
		c.add(config.NodeError(config.LookupNode(val, "key"), kp+".key", "%v", err))
		ok = false
	} else {
		cd.Key = t
	}
	if cd.For <= 0 {
		c.add(config.NodeError(config.LookupNode(val, "for"), kp+".for", "must be a positive duration"))
		ok = false
	}
	if !ok {
		return nil
	}
	return cd
}

// schedules compiles the config's schedules; a wrong entry is reported at
// its own line.
func (c *compiler) schedules() {
	c.rt.Schedules = map[string]*schedule.Schedule{}
	c.badSchedules = map[string]bool{}
	for i, sc := range c.rt.Config.Schedules {
		path := fmt.Sprintf("schedules[%d]", i)
		node := config.LookupNode(c.doc, "schedules", fmt.Sprint(i))
		if _, dup := c.rt.Schedules[sc.Name]; dup {
			c.add(config.NodeError(config.LookupNode(node, "name"), path+".name", "duplicate schedule name %q", sc.Name))
			continue
		}
		s, err := schedule.New(sc.Name, sc.Timezone, sc.Weekly, sc.Except)
		if err != nil {
			c.badSchedules[sc.Name] = true
		}
		var errs schedule.Errors
		switch {
		case errors.As(err, &errs):
			for _, e := range errs {
				at, p := config.LookupNode(node, e.Field), path+"."+e.Field
				if e.Index >= 0 {
					at, p = config.LookupNode(node, e.Field, fmt.Sprint(e.Index)), fmt.Sprintf("%s[%d]", p, e.Index)
				}
				if at == nil {
					at = node
				}
				c.add(config.NodeError(at, p, "%s", e.Msg))
			}
			continue
		case err != nil:
			c.add(config.NodeError(node, path, "%v", err))
			continue
		}
		c.rt.Schedules[sc.Name] = s
	}
}

// group compiles a rule's group: its by expressions per source, and its
// times.
func (c *compiler) group(gc *config.GroupConfig, node *yaml.Node, path string, sources []*Source) *Group {
	g := &Group{By: gc.By, Wait: time.Duration(gc.Wait), Interval: time.Duration(gc.Interval), Max: gc.Max, progs: map[string][]*vm.Program{}}
	errAt := c.errAt(node, path)
	ok := true
	if g.Max == 0 {
		g.Max = 100
	}
	if g.Max < 1 || g.Max > 1000 {
		errAt("max", "must be between 1 and 1000")
		ok = false
	}
	if g.Wait < 0 || g.Interval < 0 {
		errAt("wait", "wait and interval must not be negative")
		ok = false
	}
	for _, s := range sources {
		env := s.adapter.Env()
		for i, by := range g.By {
			opts := []expr.Option{expr.Env(env), expr.MaxNodes(500)}
			if _, generic := env.(map[string]any); generic {
				opts = append(opts, expr.AllowUndefinedVariables())
			}
			p, err := expr.Compile(by, opts...)
			if err != nil {
				c.add(exprError(err, config.LookupNode(node, "by", fmt.Sprint(i)), fmt.Sprintf("%s.by[%d]", path, i)))
				ok = false
				continue
			}
			g.progs[s.Name] = append(g.progs[s.Name], p)
		}
	}
	if !ok {
		return nil
	}
	return g
}

// unless compiles a rule's unless: when over every source (a cancelling
// event may come from any), same over the rule's sources and every
// source, since it is evaluated on both events.
func (c *compiler) unless(uc *config.UnlessConfig, node *yaml.Node, path string, sources []*Source) *Unless {
	u := &Unless{When: uc.When, Same: uc.Same, Within: time.Duration(uc.Within), when: map[string]*vm.Program{}, same: map[string][]*vm.Program{}}
	errAt := c.errAt(node, path)
	ok := true
	if strings.TrimSpace(u.When) == "" {
		errAt("when", "must be set: an expression over the later event that cancels the timer")
		ok = false
	}
	if len(u.Same) == 0 {
		errAt("same", "must list at least one expression (such as entity_id): without it any later event would cancel every timer of the rule")
		ok = false
	}
	if u.Within <= 0 {
		errAt("within", "must be a positive duration")
		ok = false
	}
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	report := func(err error, at *yaml.Node, p string) {
		e := exprError(err, at, p)
		if !seen[e.Msg+p] {
			seen[e.Msg+p] = true
			c.add(e)
		}
		ok = false
	}
	for _, s := range c.rt.Sources {
		env := s.adapter.Env()
		p, err := compileWhen(u.When, env)
		if err != nil {
			report(err, config.LookupNode(node, "when"), path+".when")
			continue
		}
		u.when[s.Name] = p
		for i, src := range u.Same {
			opts := []expr.Option{expr.Env(env), expr.MaxNodes(500)}
			if _, generic := env.(map[string]any); generic {
				opts = append(opts, expr.AllowUndefinedVariables())
			}
			p, err := expr.Compile(src, opts...)
			if err != nil {
				report(err, config.LookupNode(node, "same", fmt.Sprint(i)), fmt.Sprintf("%s.same[%d]", path, i))
				continue
			}
			u.same[s.Name] = append(u.same[s.Name], p)
		}
	}
	if !ok {
		return nil
	}
	return u
}

// routeAfter compiles a route's after: the names of sinks, each once.
func (c *compiler) routeAfter(rt *Route, kp string, val *yaml.Node) {
	if val.Kind != yaml.SequenceNode {
		c.add(config.NodeError(val, kp, "want a list of sink names"))
		return
	}
	for i, n := range val.Content {
		switch {
		case n.Kind != yaml.ScalarNode:
			c.add(config.NodeError(n, fmt.Sprintf("%s[%d]", kp, i), "want a sink name"))
		case c.rt.Sinks[n.Value] == nil:
			c.add(config.NodeError(n, fmt.Sprintf("%s[%d]", kp, i), "unknown sink %q", n.Value))
		case slices.Contains(rt.After, n.Value):
			c.add(config.NodeError(n, fmt.Sprintf("%s[%d]", kp, i), "sink %q is listed twice", n.Value))
		default:
			rt.After = append(rt.After, n.Value)
		}
	}
}

// checkAfterCycles refuses a config whose after: lists can wait in a
// circle: a route to sink A after B, and one to B after A (or a route
// after its own sink). Sinks are the graph's nodes, since a delivery
// waits for every delivery of its event to the sinks it names, whichever
// rule made them.
func (c *compiler) checkAfterCycles() {
	edges := map[string][]string{}
	where := map[[2]string]*Route{}
	for _, r := range c.rt.Rules {
		for _, rt := range r.Routes {
			for _, a := range rt.After {
				if _, seen := where[[2]string{rt.Sink, a}]; !seen {
					edges[rt.Sink] = append(edges[rt.Sink], a)
					where[[2]string{rt.Sink, a}] = rt
				}
			}
		}
	}
	const (
		unvisited = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) bool
	visit = func(s string) bool {
		state[s] = onPath
		path = append(path, s)
		for _, next := range edges[s] {
			switch state[next] {
			case onPath:
				cycle := append(slices.Clone(path[slices.Index(path, next):]), next)
				rt := where[[2]string{s, next}]
				c.add(config.NodeError(config.LookupNode(rt.node, "after"), rt.path+".after",
					"after: waits in a circle: %s", strings.Join(cycle, " waits for ")))
				return false
			case unvisited:
				if !visit(next) {
					return false
				}
			}
		}
		path = path[:len(path)-1]
		state[s] = done
		return true
	}
	for _, s := range slices.Sorted(maps.Keys(edges)) {
		if state[s] == unvisited && !visit(s) {
			return
		}
	}
}

// allTyped reports whether the sources share one typed view, which a
// rule over all of them can then check its templates against.
func allTyped(sources []*Source) bool {
	if len(sources) == 0 {
		return false
	}
	t := reflect.TypeOf(sources[0].adapter.Env())
	if t.Kind() != reflect.Struct {
		return false
	}
	for _, s := range sources[1:] {
		if reflect.TypeOf(s.adapter.Env()) != t {
			return false
		}
	}
	return true
}

func findSpec(specs []router.FieldSpec, name string) (router.FieldSpec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return router.FieldSpec{}, false
}

func specNames(specs []router.FieldSpec) string {
	names := []string{"dedup_key", "on_existing", "on_missing", "after", "during", "outside", "when_closed", "cooldown", "delay"}
	for _, s := range specs {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// LoadFile reads, expands, validates and compiles a config file. Every
// problem found is returned, as ConfigErrors.
func LoadFile(path string, sinks config.SinkFactory) (*Runtime, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Load(path, data, sinks, nil)
}

// Load compiles a config from data; file names it in errors. lookup reads
// environment variables (nil: the process environment).
func Load(file string, data []byte, sinks config.SinkFactory, lookup func(string) (string, bool)) (*Runtime, error) {
	cfg, doc, errs := config.Parse(file, data, lookup)
	if errs != nil {
		errs.Sort()
		return nil, errs
	}
	rt, errs := compile(file, cfg, doc, sinks)
	if len(errs) > 0 {
		for _, e := range errs {
			if e.File == "" {
				e.File = file
			}
		}
		errs.Sort()
		return nil, errs
	}
	return rt, nil
}

// SendHeaders signs body as the source's sender would, for hookroute
// send; keyFile is send's --key.
func (s *Source) SendHeaders(keyFile string, body []byte) (http.Header, error) {
	if s.Kind.Sign == nil {
		return nil, errors.New(s.Kind.CannotSign)
	}
	return s.Kind.Sign(s.config, keyFile, body)
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Decode builds the event view of a verified body.
func (s *Source) Decode(in *router.Incoming) (*router.View, error) { return s.adapter.Decode(in) }

// Match evaluates every rule that applies to the source and returns those
// that match. A rule that fails at run time on this event counts as not
// matched; onError hears about it (the caller logs it with the rule name).
//
// An ignored view (router.View.Ignored: a Slack bot's own message, a user
// outside allow_users) matches no rule: the check is here, once, rather
// than in every rule's when:, so that a rule written without it cannot
// loop.
func (rt *Runtime) Match(source string, v *router.View, onError func(rule string, err error)) []*Rule {
	if v.Ignored != "" {
		return nil
	}
	var out []*Rule
	for _, r := range rt.Rules {
		p := r.progs[source]
		if p == nil {
			continue
		}
		ok, err := expr.Run(p, v.Env)
		if err != nil {
			if onError != nil {
				onError(r.Name, err)
			}
			continue
		}
		if b, _ := ok.(bool); b {
			out = append(out, r)
		}
	}
	return out
}

// droppedHeaders are the request headers never stored, shown or put in an
// event view, whatever the config: they carry the sender's credentials,
// not event data, and an event is read by everyone with the read scope.
// server.drop_headers adds to them.
var droppedHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true,
	"x-api-key": true, "api-key": true, "x-auth-token": true, "x-access-token": true, "x-amz-security-token": true,
}

// DropsHeader reports whether a request header (lower-cased) is left out
// of what is stored and shown.
func (rt *Runtime) DropsHeader(name string) bool {
	return droppedHeaders[name] || rt.dropHeaders[name]
}

// HeaderMap lower-cases header names, keeps the first value of each and
// drops credentials (droppedHeaders and server.drop_headers). It runs on
// a request that has been verified already: a signature is checked over
// the raw request, whose headers this leaves alone.
func (rt *Runtime) HeaderMap(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, vs := range h {
		k = strings.ToLower(k)
		if len(vs) == 0 || rt.DropsHeader(k) {
			continue
		}
		m[k] = vs[0]
	}
	return m
}
