package config

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
)

// Config is the config file as written (README: Configuration), after ${NAME}
// expansion. Compile turns it into a Runtime.
type Config struct {
	Server   ServerConfig     `yaml:"server"`
	Store    StoreConfig      `yaml:"store"`
	Admin    AdminConfig      `yaml:"admin"`
	Egress   EgressConfig     `yaml:"egress"`
	Sources  []SourceConfig   `yaml:"sources"`
	Sinks    []yaml.Node      `yaml:"sinks"` // decoded per kind by the SinkFactory
	Defaults DeliveryDefaults `yaml:"defaults"`
	Rules    []RuleConfig     `yaml:"rules"`
	// Schedules are named opening hours that routes keep to (during:,
	// outside:).
	Schedules []ScheduleConfig `yaml:"schedules"`
	// Tests are rule tests (see ruletest.go), run at every load: a config
	// whose own tests fail does not load.
	Tests []yaml.Node `yaml:"tests"`
}

// ScheduleConfig is a schedule: weekly opening hours in a time zone, with
// holidays. A route with during: NAME delivers only while it is open, one
// with outside: NAME only while it is closed; the rest of the time its
// deliveries wait.
type ScheduleConfig struct {
	Name string `yaml:"name"`
	// Timezone is an IANA zone name (Europe/Berlin); the windows are
	// its wall-clock times, daylight saving included.
	Timezone string `yaml:"timezone"`
	// Weekly are windows such as "mon-fri 09:00-18:00".
	Weekly []string `yaml:"weekly"`
	// Except are closed dates (2026-12-25) or ranges of them
	// (2026-12-24..2026-12-26).
	Except []string `yaml:"except"`
}

// ServerConfig configures the listeners.
type ServerConfig struct {
	// Listen is the ingest address: /hooks/*, /healthz, /readyz.
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics and the admin API. Never shared with
	// Listen, so the admin surface is not exposed where senders reach.
	AdminListen string `yaml:"admin_listen"`
	// MaxBody caps an ingest request body; larger ones get 413.
	MaxBody ByteSize `yaml:"max_body"`
	// ReadTimeout bounds the read of a whole request, headers and body, on
	// both listeners; a client that sends slower is cut off.
	ReadTimeout Duration `yaml:"read_timeout"`
	// Screenname is {screenname} in the key API paths.
	Screenname string `yaml:"screenname"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// DropHeaders names request headers that are never stored, shown or
	// seen by rules, besides the built-in credential headers (authorization,
	// cookie, x-api-key…): a sender's own credential headers.
	DropHeaders []string `yaml:"drop_headers"`
}

// StoreConfig selects and tunes the store.
type StoreConfig struct {
	// URL is sqlite:PATH (default sqlite:hookroute.db) or postgres://….
	URL string `yaml:"url"`
	// Retention is how long the delivery log and dead letters are kept.
	Retention Duration `yaml:"retention"`
}

// AdminConfig holds the admin API's bearer tokens.
type AdminConfig struct {
	Tokens []TokenConfig `yaml:"tokens"`
}

// TokenConfig is one admin bearer token and what it may do.
type TokenConfig struct {
	Name   string        `yaml:"name"`
	Token  router.Secret `yaml:"token"`
	Scopes []string      `yaml:"scopes"`
}

// EgressConfig is the outbound address guard.
type EgressConfig struct {
	// Allow lists CIDRs that sinks may reach even though they are private,
	// loopback or link-local.
	Allow []string `yaml:"allow"`
}

// SourceConfig is one webhook source.
type SourceConfig struct {
	Name string `yaml:"name"`
	// Type names the source's kind, one of SourceKinds.
	Type string `yaml:"type"`
	// Path is the ingest path; default /hooks/{name}.
	Path string `yaml:"path"`
	// PublicKeys verify salesiq signatures (several for rotation).
	PublicKeys []KeyRef `yaml:"public_keys"`
	// Secret is the HMAC secret (hmac-sha256, github, standard-webhooks).
	Secret router.Secret `yaml:"secret"`
	// Secrets are extra secrets accepted during a rotation.
	Secrets []router.Secret `yaml:"secrets"`
	// Header, Encoding and Prefix describe an hmac-sha256 signature header.
	Header   string `yaml:"header"`
	Encoding string `yaml:"encoding"`
	Prefix   string `yaml:"prefix"`
	// Tolerance bounds the timestamp skew (standard-webhooks).
	Tolerance Duration `yaml:"tolerance"`
	// Event names the event: an expr over the event view for generic
	// sources (headers["x-github-event"]); for salesiq, the literal event
	// name of bare-entity (workflow) bodies.
	Event string `yaml:"event"`
	// ID is an expr giving the dedup id of a generic source's event.
	ID string `yaml:"id"`
	// SigningSecret is a slack source's signing secret (the app's Basic
	// Information page), by reference like every secret.
	SigningSecret router.Secret `yaml:"signing_secret"`
	// AllowUsers and AllowChannels, when set, limit which Slack users and
	// channels can trigger rules; other events are stored but match none.
	AllowUsers    []string `yaml:"allow_users"`
	AllowChannels []string `yaml:"allow_channels"`
	// BotUserID and AppID are the slack source's own bot: its events are
	// stored but match no rule, so that a reply cannot loop back.
	BotUserID string `yaml:"bot_user_id"`
	AppID     string `yaml:"app_id"`
}

// KeyRef is a public key given inline or by file.
type KeyRef struct {
	File string        `yaml:"file"`
	PEM  router.Secret `yaml:"pem"` // not secret, but often long and from the environment
}

// DeliveryDefaults apply to every sink unless the sink overrides them.
type DeliveryDefaults struct {
	// Timeout bounds one attempt.
	Timeout Duration `yaml:"timeout"`
	// Retry is the backoff schedule.
	Retry RetryConfig `yaml:"retry"`
	// Concurrency is the number of attempts a sink runs at once.
	Concurrency int `yaml:"concurrency"`
	// PauseAfter pauses a sink after this many attempts in a row failed
	// (0: never): its deliveries then wait, without spending attempts,
	// until a probe succeeds or an operator resumes it.
	PauseAfter int `yaml:"pause_after"`
	// PauseProbe is how often a paused sink is tried.
	PauseProbe Duration `yaml:"pause_probe"`
}

// RetryConfig is an exponential backoff schedule.
type RetryConfig struct {
	MaxAttempts int      `yaml:"max_attempts"`
	Initial     Duration `yaml:"initial"`
	MaxInterval Duration `yaml:"max_interval"`
	Multiplier  float64  `yaml:"multiplier"`
	// Jitter is the randomization factor: each delay is spread ±Jitter.
	Jitter float64 `yaml:"jitter"`
}

// RuleConfig is one routing rule.
type RuleConfig struct {
	Name   string      `yaml:"name"`
	Source string      `yaml:"source"`
	When   string      `yaml:"when"`
	To     []yaml.Node `yaml:"to"` // routes; their keys depend on the sink
	// Group, when set, makes each route send one notification per group
	// of matching events instead of one per event.
	Group *GroupConfig `yaml:"group"`
	// Unless, when set, makes the rule's deliveries wait and go only if
	// no later event cancels them in time.
	Unless *UnlessConfig `yaml:"unless"`
}

// UnlessConfig is a rule's timer: its deliveries wait Within, and a later
// event matching When whose Same values equal the first event's cancels
// them.
type UnlessConfig struct {
	When   string   `yaml:"when"`
	Same   []string `yaml:"same"`
	Within Duration `yaml:"within"`
}

// GroupConfig groups a rule's events into digests.
type GroupConfig struct {
	// By are expr expressions over the event whose values make the
	// group's key; none: one group per rule.
	By []string `yaml:"by"`
	// Wait is how long a new group's first event waits for more.
	Wait Duration `yaml:"wait"`
	// Interval is the least time between two notifications of one group.
	Interval Duration `yaml:"interval"`
	// Max is the most events one notification lists (default 100); the
	// rest are counted.
	Max int `yaml:"max"`
}

// SinkCommon holds the keys every sink takes; the rest belong to its kind.
type SinkCommon struct {
	Name        string       `yaml:"name"`
	Type        string       `yaml:"type"`
	Optional    bool         `yaml:"optional"`
	Timeout     Duration     `yaml:"timeout"`
	Retry       *RetryConfig `yaml:"retry"`
	Concurrency int          `yaml:"concurrency"`
	PauseAfter  int          `yaml:"pause_after"`
	PauseProbe  Duration     `yaml:"pause_probe"`
}

// SinkCommonKeys are SinkCommon's keys, which a sink's kind does not see.
var SinkCommonKeys = map[string]bool{"name": true, "type": true, "optional": true, "timeout": true, "retry": true, "concurrency": true, "pause_after": true, "pause_probe": true}

// DefaultConfig returns the defaults that a config file overrides.
func DefaultConfig() Config {
	return Config{
		Server: ServerConfig{
			Listen:          ":8080",
			AdminListen:     "127.0.0.1:8081",
			MaxBody:         1 << 20,
			ReadTimeout:     Duration(10 * time.Second),
			Screenname:      "default",
			ShutdownTimeout: Duration(10 * time.Second),
		},
		Store: StoreConfig{URL: "sqlite:hookroute.db", Retention: Duration(60 * 24 * time.Hour)},
		Defaults: DeliveryDefaults{
			Timeout:     Duration(5 * time.Second),
			Concurrency: 4,
			PauseAfter:  100,
			PauseProbe:  Duration(30 * time.Second),
			Retry: RetryConfig{
				MaxAttempts: 8,
				Initial:     Duration(10 * time.Second),
				MaxInterval: Duration(30 * time.Minute),
				Multiplier:  2,
				Jitter:      0.2,
			},
		},
	}
}

// MaxConfigSize bounds the config file: a rules file is small, and the cap
// keeps an alias bomb or a runaway file from eating memory at load.
const MaxConfigSize = 4 << 20

// Parse reads the file into a Config, with env expansion and strict
// keys. The returned root node keeps positions for later checks.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, *yaml.Node, ConfigErrors) {
	pos := func(es ConfigErrors) ConfigErrors {
		for _, e := range es {
			e.File = file
		}
		return es
	}
	if len(data) > MaxConfigSize {
		return nil, nil, ConfigErrors{{Pos: Pos{File: file}, Msg: fmt.Sprintf("file is larger than %d bytes", MaxConfigSize)}}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, nil, pos(ConfigErrors{YAMLSyntaxError(err)})
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, pos(ConfigErrors{{Pos: Pos{Line: 1, Col: 1}, Msg: "config must be a YAML mapping"}})
	}
	if HasAlias(&root) {
		// Aliases buy nothing in a rules file and are how YAML bombs work.
		return nil, nil, pos(ConfigErrors{{Pos: Pos{Line: 1, Col: 1}, Msg: "YAML aliases (*name) are not allowed"}})
	}
	doc := root.Content[0]
	if errs := ExpandEnv(doc, lookup); len(errs) > 0 {
		return nil, nil, pos(errs)
	}
	cfg := DefaultConfig()
	if err := DecodeStrict(doc, "", &cfg); err != nil {
		return nil, nil, pos(AsConfigErrors(err, doc, ""))
	}
	return &cfg, doc, nil
}

// HasAlias reports whether the document uses a YAML alias anywhere: the
// loader refuses them, since expanding them is how a small file becomes a
// huge one.
func HasAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if HasAlias(c) {
			return true
		}
	}
	return false
}

// YAMLSyntaxError turns "yaml: line 3: mapping values are not allowed" into
// a positioned error.
func YAMLSyntaxError(err error) *ConfigError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &ConfigError{Msg: msg}
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		e.Line = line
		e.Msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return e
}

// ValidateStatic checks the parts of the config that need no compiling.
func (c *Config) ValidateStatic(doc *yaml.Node, add func(*ConfigError)) {
	at := func(path ...string) *yaml.Node { return LookupNode(doc, path...) }
	c.validateServer(at, add)
	c.validateStore(at, add)
	c.validateAdminTokens(at, add)
	for i, a := range c.Egress.Allow {
		if _, err := netip.ParsePrefix(a); err != nil {
			add(NodeError(at("egress", "allow", fmt.Sprint(i)), fmt.Sprintf("egress.allow[%d]", i), "not a CIDR (e.g. 127.0.0.1/32)"))
		}
	}
	ValidateRetry(c.Defaults.Retry, at("defaults", "retry"), "defaults.retry", add)
	if c.Defaults.Timeout <= 0 {
		add(NodeError(at("defaults", "timeout"), "defaults.timeout", "must be positive"))
	}
	if c.Defaults.Concurrency < 1 || c.Defaults.Concurrency > 256 {
		add(NodeError(at("defaults", "concurrency"), "defaults.concurrency", "must be between 1 and 256"))
	}
}

// nodeAt finds the node at a path of the config document, for positions.
type nodeAt func(path ...string) *yaml.Node

func (c *Config) validateServer(at nodeAt, add func(*ConfigError)) {
	if c.Server.Listen == "" {
		add(NodeError(at("server", "listen"), "server.listen", "must not be empty"))
	}
	if c.Server.AdminListen != "" && c.Server.AdminListen == c.Server.Listen {
		add(NodeError(at("server", "admin_listen"), "server.admin_listen", "must differ from server.listen: ingest and admin never share a listener"))
	}
	for _, k := range []struct{ key, v string }{{"listen", c.Server.Listen}, {"admin_listen", c.Server.AdminListen}} {
		if k.v == "" {
			continue
		}
		host, _, err := net.SplitHostPort(k.v)
		if err != nil {
			add(NodeError(at("server", k.key), "server."+k.key, "want host:port, e.g. :8080"))
			continue
		}
		if k.key == "admin_listen" && len(c.Admin.Tokens) == 0 && !isLoopbackHost(host) {
			// Without tokens /metrics is open (and so is the console's
			// page): fine on loopback, where only this host reaches it.
			add(NodeError(at("server", k.key), "server."+k.key, "the admin listener would be reachable from the network with no admin token: "+
				"/metrics would answer anyone. Add a token (admin.tokens: [{name: ops, token: ${HOOKROUTE_ADMIN_TOKEN}, scopes: [read]}]) "+
				"or listen on loopback (127.0.0.1:PORT, [::1]:PORT or localhost:PORT; an empty host, as in :9090, is every interface)"))
		}
	}
	if c.Server.ReadTimeout <= 0 {
		add(NodeError(at("server", "read_timeout"), "server.read_timeout", "must be positive, e.g. 10s"))
	}
}

func (c *Config) validateStore(at nodeAt, add func(*ConfigError)) {
	if !strings.HasPrefix(c.Store.URL, "sqlite:") && !strings.HasPrefix(c.Store.URL, "postgres://") && !strings.HasPrefix(c.Store.URL, "postgresql://") {
		add(NodeError(at("store", "url"), "store.url", "want sqlite:PATH or postgres://…"))
	}
	if time.Duration(c.Store.Retention) < 7*24*time.Hour {
		// Dedup keys must outlive every sender's retries.
		add(NodeError(at("store", "retention"), "store.retention", "must be at least 7d, so that dedup ids outlive senders' retries"))
	}
}

func (c *Config) validateAdminTokens(at nodeAt, add func(*ConfigError)) {
	names := map[string]bool{}
	for i, t := range c.Admin.Tokens {
		p := fmt.Sprintf("admin.tokens[%d]", i)
		n := at("admin", "tokens", fmt.Sprint(i))
		if t.Name == "" || names[t.Name] {
			add(NodeError(n, p+".name", "must be set and unique"))
		}
		names[t.Name] = true
		if len(t.Token.Reveal()) < 16 {
			add(NodeError(LookupNode(n, "token"), p+".token", "must be at least 16 characters"))
		}
		for j, s := range t.Scopes {
			if !slices.Contains(scopes, s) {
				add(NodeError(LookupNode(n, "scopes", fmt.Sprint(j)), fmt.Sprintf("%s.scopes[%d]", p, j), "unknown scope %q (want one of %s)", s, strings.Join(scopes, ", ")))
			}
		}
	}
}

// isLoopbackHost reports whether a listener on host is reachable from
// this machine only. An empty host, or any name but localhost, is not.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ValidateRetry checks a retry schedule, reporting each problem at its key
// under path.
func ValidateRetry(r RetryConfig, n *yaml.Node, path string, add func(*ConfigError)) {
	switch {
	case r.MaxAttempts < 1 || r.MaxAttempts > 100:
		add(NodeError(n, path+".max_attempts", "must be between 1 and 100"))
	case r.Initial <= 0 || r.MaxInterval < r.Initial:
		add(NodeError(n, path, "initial must be positive and max_interval at least initial"))
	case r.Multiplier < 1:
		add(NodeError(n, path+".multiplier", "must be at least 1"))
	case r.Jitter < 0 || r.Jitter >= 1:
		add(NodeError(n, path+".jitter", "must be in [0, 1)"))
	}
}

// LookupNode follows mapping keys and sequence indexes from n; it returns
// the deepest node found, so errors point as close as possible.
func LookupNode(n *yaml.Node, path ...string) *yaml.Node {
	for _, p := range path {
		if n == nil {
			return nil
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscan(p, &idx); err == nil && idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// SinkFactory builds sinks from their configuration. main passes the
// sinks package's registry; tests may pass their own.
type SinkFactory interface {
	// Build decodes node (the sink's YAML mapping, with ${VAR} already
	// expanded) strictly and returns the sink. Errors carry positions.
	Build(kind, name string, node *yaml.Node) (router.Sink, error)
	// RouteFields lists the message fields a route to a sink of this kind
	// may set, and whether the kind exists at all.
	RouteFields(kind string) (fields []router.FieldSpec, ok bool)
}

// scopes are what an admin token may do.
var scopes = []string{"read", "replay", "trial", "reload", "silence", "webhooks.create", "webhooks.delete"}

// Scopes returns what an admin token may do, in a fresh slice.
func Scopes() []string { return slices.Clone(scopes) }

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
// provides one (sinks.TrialCapturer).
type Capturer interface {
	SinkFactory
	// Capture returns a context under which the first HTTP request a
	// capturing sink makes is recorded (and answered with an error, so
	// nothing leaves the process), and a function returning that request,
	// nil if none was made. It returns a nil function when this factory's
	// sinks would really send: the trial then shows no request.
	Capture(ctx context.Context) (context.Context, func() *CapturedRequest)
}
