package cli

// What the admin API commands (deliveries, keys) read from the config
// file: where the admin API listens, the screenname of the key API's
// paths, and the admin tokens with their scopes.
//
// They read those sections alone, not the whole config through
// config.Parse or dispatch.Load: both expand every ${VAR} of the file, and
// a variable that is unset is a load error. The router's environment holds
// the sources' keys and the sinks' tokens; an operator's shell, where
// these commands run, holds at most an admin token. Reading only
// server.admin_listen, server.screenname and admin.tokens, and expanding
// each token on its own, lets `hookroute deliveries list -c rules.yaml`
// work with nothing but one token's variable set. Whether the rest of the
// file is valid is check's business (and serve's, which refuses it).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router/config"
)

// adminUsage ends the usage of every admin API command.
const adminUsage = `
Where and with which token, flags first, then the environment, then the
config file (-c FILE, $HOOKROUTE_CONFIG, or rules.yaml if it exists):
  --admin URL, $HOOKROUTE_ADMIN_URL, or http:// and the config's
      server.admin_listen (loopback for 0.0.0.0, :: or no host);
      default http://127.0.0.1:8081
  --token-name NAME (one of the config's admin.tokens), $HOOKROUTE_TOKEN, or
      the config's first admin token with the scope needed whose ${VAR} is set
Of the config, only server.admin_listen, server.screenname and admin.tokens
are read: the variables of the sources' and sinks' secrets need not be set.
`

// adminSettings is the part of a config file the admin API commands use.
type adminSettings struct {
	file       string
	listen     string     // server.admin_listen, expanded
	listenNode *yaml.Node // where it was written (nil: the default)
	screenname string
	tokens     []adminToken
}

// adminToken is one of admin.tokens. A token whose ${VAR} is unset or
// empty in this process cannot be used, and unusable says why.
type adminToken struct {
	name     string
	scopes   []string
	value    string
	unusable error
}

// readAdminSettings reads the admin API's settings from the config file
// at path, expanding ${VAR} references with lookup.
func readAdminSettings(path string, lookup func(string) (string, bool)) (*adminSettings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	doc, err := parseYAMLDoc(path, data)
	if err != nil {
		return nil, err
	}
	def := config.DefaultConfig().Server
	s := &adminSettings{file: path, listen: def.AdminListen, screenname: def.Screenname}
	server := mapValue(doc, "server")
	if s.listenNode = mapValue(server, "admin_listen"); s.listenNode != nil {
		if s.listen, err = s.scalar(s.listenNode, "server.admin_listen", lookup); err != nil {
			return nil, err
		}
	}
	if n := mapValue(server, "screenname"); n != nil {
		if s.screenname, err = s.scalar(n, "server.screenname", lookup); err != nil {
			return nil, err
		}
	}
	if err := s.readTokens(mapValue(mapValue(doc, "admin"), "tokens"), lookup); err != nil {
		return nil, err
	}
	return s, nil
}

// parseYAMLDoc decodes data into its top-level mapping, refusing what
// config.Parse refuses before it expands anything.
func parseYAMLDoc(path string, data []byte) (*yaml.Node, error) {
	fail := func(e *config.ConfigError) error {
		e.File = path
		return e
	}
	if len(data) > config.MaxConfigSize {
		return nil, fail(&config.ConfigError{Msg: fmt.Sprintf("file is larger than %d bytes", config.MaxConfigSize)})
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fail(config.YAMLSyntaxError(err))
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fail(&config.ConfigError{Pos: config.Pos{Line: 1, Col: 1}, Msg: "config must be a YAML mapping"})
	}
	if config.HasAlias(&root) {
		return nil, fail(&config.ConfigError{Pos: config.Pos{Line: 1, Col: 1}, Msg: "YAML aliases (*name) are not allowed"})
	}
	return root.Content[0], nil
}

// scalar expands the string at n.
func (s *adminSettings) scalar(n *yaml.Node, path string, lookup func(string) (string, bool)) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", s.errorAt(n, path, "want a string")
	}
	v, _, err := config.ExpandString(n.Value, lookup)
	if err != nil {
		return "", s.errorAt(n, path, "%v", err)
	}
	return v, nil
}

// readTokens reads admin.tokens. Each is expanded on its own, so that the
// variable of one that is unset here leaves the others usable.
func (s *adminSettings) readTokens(seq *yaml.Node, lookup func(string) (string, bool)) error {
	if seq == nil {
		return nil
	}
	if seq.Kind != yaml.SequenceNode {
		return s.errorAt(seq, "admin.tokens", "want a list")
	}
	for i, n := range seq.Content {
		path := fmt.Sprintf("admin.tokens[%d]", i)
		unset := config.ExpandEnv(n, lookup)
		var tc config.TokenConfig
		if err := n.Decode(&tc); err != nil {
			return s.errorAt(n, path, "want {name, token, scopes}")
		}
		t := adminToken{name: tc.Name, scopes: tc.Scopes, value: tc.Token.Reveal()}
		switch {
		case len(unset) > 0:
			for _, e := range unset {
				e.File = s.file
			}
			t.value, t.unusable = "", unset
		case t.value == "":
			t.unusable = s.errorAt(mapValue(n, "token"), path+".token", "empty")
		}
		s.tokens = append(s.tokens, t)
	}
	return nil
}

func (s *adminSettings) errorAt(n *yaml.Node, path, format string, args ...any) error {
	e := config.NodeError(n, path, format, args...)
	e.File = s.file
	return e
}

// mapValue is the value of key in the mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// adminURL is the admin API's URL as this host reaches server.admin_listen.
func (s *adminSettings) adminURL() (string, error) {
	const how = "give --admin URL or set HOOKROUTE_ADMIN_URL"
	if s.listen == "" {
		return "", s.errorAt(s.listenNode, "server.admin_listen", "is empty, so the router serves no admin API (%s)", how)
	}
	_, port, err := net.SplitHostPort(s.listen)
	if err != nil {
		return "", s.errorAt(s.listenNode, "server.admin_listen", "want host:port (%s)", how)
	}
	if port == "0" {
		// The router listens on a port the system picks: only its log
		// says which.
		return "", s.errorAt(s.listenNode, "server.admin_listen", "port 0 is picked when the router starts (%s)", how)
	}
	return "http://" + dialAddr(s.listen), nil
}

// token is the first token with scope that this process can use.
func (s *adminSettings) token(scope string) (string, error) {
	var why []string
	for _, t := range s.tokens {
		if !slices.Contains(t.scopes, scope) {
			continue
		}
		if t.unusable == nil {
			return t.value, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", t.name, t.unusable))
	}
	if len(why) == 0 {
		return "", fmt.Errorf("set HOOKROUTE_TOKEN to an admin token: %s has no admin token with the %s scope", s.file, scope)
	}
	return "", fmt.Errorf("set HOOKROUTE_TOKEN to an admin token, or the variable of one of %s's tokens with the %s scope:\n  %s",
		s.file, scope, strings.Join(why, "\n  "))
}

// namedToken is the token called name.
func (s *adminSettings) namedToken(name string) (string, error) {
	for _, t := range s.tokens {
		if t.name != name {
			continue
		}
		if t.unusable != nil {
			return "", fmt.Errorf("admin token %s: %v", name, t.unusable)
		}
		return t.value, nil
	}
	return "", fmt.Errorf("%s has no admin token named %q", s.file, name)
}

// adminFlags are the flags every admin API command takes.
type adminFlags struct {
	fs         *flag.FlagSet
	config     *string
	admin      *string
	tokenName  *string
	screenname *string // nil: the command does not use the key API
}

func newAdminFlags(name, usage string, stderr io.Writer) *adminFlags {
	fs, cfg := newFlags(name, usage, stderr)
	return &adminFlags{
		fs:        fs,
		config:    cfg,
		admin:     fs.String("admin", "", "admin API `URL` (default $HOOKROUTE_ADMIN_URL, or server.admin_listen of the config)"),
		tokenName: fs.String("token-name", "", "use the config's admin token `NAME` (default $HOOKROUTE_TOKEN, or the config's first token with the scope needed)"),
	}
}

// withScreenname adds --screenname, for the key API.
func (f *adminFlags) withScreenname() *adminFlags {
	f.screenname = f.fs.String("screenname", "", "the router's server.screenname (default $HOOKROUTE_SCREENNAME, or the config's)")
	return f
}

// settings reads the config file when -c or $HOOKROUTE_CONFIG names one,
// or when the default rules.yaml exists: without a config the commands
// work from flags and the environment alone, as on a host that has no
// copy of it.
func (f *adminFlags) settings() (*adminSettings, error) {
	named := os.Getenv("HOOKROUTE_CONFIG") != ""
	f.fs.Visit(func(fl *flag.Flag) { named = named || fl.Name == "c" || fl.Name == "config" })
	if !named {
		if _, err := os.Stat(*f.config); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return readAdminSettings(*f.config, os.LookupEnv)
}

// connect returns a client of the admin API, for a command that needs
// scope, and the screenname of the key API. Flags come first, then the
// environment, then the config file. On failure it prints why and
// returns the exit code: 1 for a config that cannot be read, 2 for what
// is missing.
func (f *adminFlags) connect(cmd, scope string, stderr io.Writer) (*adminClient, string, int) {
	s, err := f.settings()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, "", 1
	}
	base, err := f.baseURL(s)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, "", 2
	}
	tok, err := f.token(s, scope)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, "", 2
	}
	return newAdminClient(base, tok), f.screennameFrom(s), 0
}

func (f *adminFlags) baseURL(s *adminSettings) (string, error) {
	switch {
	case *f.admin != "":
		return *f.admin, nil
	case os.Getenv("HOOKROUTE_ADMIN_URL") != "":
		return os.Getenv("HOOKROUTE_ADMIN_URL"), nil
	case s != nil:
		return s.adminURL()
	}
	return "http://127.0.0.1:8081", nil
}

// token picks the bearer token: --token-name, then HOOKROUTE_TOKEN, then
// the config's first token with scope whose variable is set here.
func (f *adminFlags) token(s *adminSettings, scope string) (string, error) {
	switch {
	case *f.tokenName != "" && s == nil:
		return "", fmt.Errorf("--token-name names a token of the config file, and there is none (-c FILE)")
	case *f.tokenName != "":
		return s.namedToken(*f.tokenName)
	case os.Getenv("HOOKROUTE_TOKEN") != "":
		return os.Getenv("HOOKROUTE_TOKEN"), nil
	case s != nil:
		return s.token(scope)
	}
	return "", errors.New("set HOOKROUTE_TOKEN to an admin token, or give the config file that holds admin.tokens (-c FILE)")
}

func (f *adminFlags) screennameFrom(s *adminSettings) string {
	switch {
	case f.screenname != nil && *f.screenname != "":
		return *f.screenname
	case os.Getenv("HOOKROUTE_SCREENNAME") != "":
		return os.Getenv("HOOKROUTE_SCREENNAME")
	case s != nil:
		return s.screenname
	}
	return config.DefaultConfig().Server.Screenname
}
