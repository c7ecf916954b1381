package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
)

// Pos is a position in a config file. Line and Col are 1-based; 0 means
// unknown.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// ConfigError is one problem in a config file. Messages never quote a
// value that came from the environment, so secrets cannot leak through
// them.
type ConfigError struct {
	Pos
	Path string // e.g. rules[2].when, sinks[0].channel
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in a config, sorted by position.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es ConfigErrors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// NodeError returns a ConfigError at node's position.
func NodeError(node *yaml.Node, path, format string, args ...any) *ConfigError {
	e := &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)}
	if node != nil {
		e.Line, e.Col = node.Line, node.Column
	}
	return e
}

// AsConfigErrors flattens err into ConfigErrors. Errors without a position
// get the position of the key their path names inside node (or of node
// itself), and plain errors get path.
func AsConfigErrors(err error, node *yaml.Node, path string) ConfigErrors {
	if err == nil {
		return nil
	}
	var es ConfigErrors
	var e *ConfigError
	switch {
	case errors.As(err, &es):
	case errors.As(err, &e):
		es = ConfigErrors{e}
	default:
		return ConfigErrors{NodeError(node, path, "%s", err.Error())}
	}
	for _, e := range es {
		if e.Line == 0 && node != nil {
			key, _, _ := strings.Cut(e.Path, ".")
			key, _, _ = strings.Cut(key, "[")
			n := LookupNode(node, key)
			e.Line, e.Col = n.Line, n.Column
		}
	}
	return es
}

// DecodeStrict decodes node into v (a pointer to a struct, pre-filled with
// defaults), rejecting keys that v's yaml tags do not name. yaml.v3's
// Node.Decode ignores KnownFields, so the check is done here, with every
// unknown key reported at its own line and column. path prefixes the
// reported paths. Fields of type Secret must have been given as ${NAME}
// references (see ExpandEnv), never written in the file.
func DecodeStrict(node *yaml.Node, path string, v any) error {
	var errs ConfigErrors
	checkKeys(node, path, reflect.TypeOf(v), &errs)
	if len(errs) > 0 {
		return errs
	}
	if err := node.Decode(v); err != nil {
		return typeErrors(err, node, path)
	}
	return nil
}

// EnvRef marks a scalar whose value came from a ${NAME} reference. The
// flow-style bit means nothing on a scalar, so it is free to carry this
// fact from ExpandEnv to DecodeStrict (which sinks call on their own
// sub-trees) without a side table. envDefault and envMixed, bits yaml.v3
// does not define (it ignores them when decoding), say that the reference
// was not one ${NAME} alone: a credential field refuses both, since the
// default or the text beside the reference is a secret written in the
// file.
const (
	EnvRef     = yaml.FlowStyle
	envDefault = yaml.FlowStyle << 1 // ${NAME:-default} with a non-empty default
	envMixed   = yaml.FlowStyle << 2 // text beside the reference, or several references
)

// ExpandEnv expands ${NAME} references in every scalar of the tree, once,
// and marks the scalars that held one. Unset variables are reported at
// their position, by name only.
func ExpandEnv(node *yaml.Node, lookup func(string) (string, bool)) ConfigErrors {
	var errs ConfigErrors
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode {
			v, use, err := ExpandString(n.Value, lookup)
			if err != nil {
				errs = append(errs, NodeError(n, "", "%v", err))
				return
			}
			if use.ref() {
				n.Value = v
				n.Style |= EnvRef
				if use.hasDefault {
					n.Style |= envDefault
				}
				if use.refs > 1 || use.literal {
					n.Style |= envMixed
				}
				n.Tag = "" // re-resolve: ${PORT} may stand for a number
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(node)
	return errs
}

var secretType = reflect.TypeOf(router.Secret(""))

// typeErrors turns yaml.v3's *TypeError ("line 3: cannot unmarshal !!str
// `abc` into int") into positioned errors without the offending value,
// which may be a secret.
func typeErrors(err error, node *yaml.Node, path string) ConfigErrors {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return ConfigErrors{NodeError(node, path, "%s", err.Error())}
	}
	var es ConfigErrors
	for _, msg := range te.Errors {
		e := &ConfigError{Path: path, Pos: Pos{Line: node.Line, Col: node.Column}}
		var line int
		if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
			e.Line, e.Col = line, 0
			msg = msg[strings.Index(msg, ":")+1:]
		}
		e.Msg = scrubYAMLValue(strings.TrimSpace(msg))
		es = append(es, e)
	}
	return es
}

// scrubYAMLValue removes the quoted value from a yaml.v3 type error
// ("cannot unmarshal !!str `secret` into int").
func scrubYAMLValue(msg string) string {
	i := strings.Index(msg, "`")
	j := strings.LastIndex(msg, "`")
	if i >= 0 && j > i {
		return msg[:i] + "value" + msg[j+1:]
	}
	return msg
}

// secretShape says what is wrong with a credential field's scalar, or ""
// if it is one ${NAME} reference alone (its default, if any, empty) or
// nothing at all. The message never quotes the value.
func secretShape(n *yaml.Node) string {
	switch {
	case n.Style&EnvRef == 0 && n.Value != "":
		return "secrets must be given by reference (${NAME}), not written in the file"
	case n.Style&envMixed != 0:
		return "a secret must be exactly one ${NAME} reference, with nothing before or after it: the rest would be part of the secret written in the file"
	case n.Style&envDefault != 0:
		return "a secret's default must be empty (${NAME:-}): a default is a secret written in the file"
	}
	return ""
}

func checkKeys(node *yaml.Node, path string, t reflect.Type, errs *ConfigErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node == nil {
		return
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if node.Kind == yaml.ScalarNode && checkScalar(node, path, t, errs) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		checkStructKeys(node, path, t, errs)
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range node.Content {
			checkKeys(c, fmt.Sprintf("%s[%d]", path, i), t.Elem(), errs)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			checkKeys(node.Content[i+1], joinPath(path, node.Content[i].Value), t.Elem(), errs)
		}
	}
}

// checkScalar checks a scalar of a type with rules of its own: a secret's
// shape, or the syntax of a type that unmarshals itself. It reports
// whether the scalar needs no further checking.
func checkScalar(node *yaml.Node, path string, t reflect.Type, errs *ConfigErrors) bool {
	if t == secretType {
		if msg := secretShape(node); msg != "" {
			*errs = append(*errs, NodeError(node, path, "%s", msg))
			return true
		}
		return false
	}
	u, ok := reflect.New(t).Interface().(yaml.Unmarshaler)
	if !ok {
		return false
	}
	// Scalars with their own syntax (durations, sizes) are checked
	// here, where the path and position are known.
	if err := u.UnmarshalYAML(node); err != nil {
		*errs = append(*errs, NodeError(node, path, "%v", err))
	}
	return true
}

// checkStructKeys reports the keys of a mapping that struct t has no field
// for, and checks the values of the others.
func checkStructKeys(node *yaml.Node, path string, t reflect.Type, errs *ConfigErrors) {
	if node.Kind != yaml.MappingNode || t == reflect.TypeOf(yaml.Node{}) {
		return
	}
	if _, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
		return
	}
	fields := YAMLFields(t)
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			*errs = append(*errs, NodeError(k, joinPath(path, k.Value), "unknown key %q", k.Value))
			continue
		}
		checkKeys(v, joinPath(path, k.Value), ft, errs)
	}
}

// YAMLFields maps the yaml keys of struct t (inline fields included) to
// their types.
func YAMLFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range YAMLFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
