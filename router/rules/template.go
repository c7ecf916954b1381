package rules

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

// rawString is template output that the field's escaper leaves alone.
type rawString string

// escFunc is the name of the function appended to every template action.
const escFunc = "hookrouteEscape"

// fieldTemplate is a compiled message field.
type fieldTemplate struct {
	name string
	t    *template.Template
}

// maxRendered bounds one rendered field, whatever the template does.
const maxRendered = 256 << 10

func templateFuncs(esc func(string) string) template.FuncMap {
	return template.FuncMap{
		escFunc: func(v any) string {
			switch t := v.(type) {
			case nil:
				return "" // a missing key renders empty, not "<no value>"
			case rawString:
				return string(t)
			}
			s := fmt.Sprint(v)
			if esc != nil {
				s = esc(s)
			}
			return s
		},
		// raw marks a value as already in the target format.
		"raw": func(v any) rawString { return rawString(fmt.Sprint(v)) },
		"json": func(v any) (rawString, error) {
			b, err := json.Marshal(v)
			return rawString(b), err
		},
		"default": func(def, v any) any {
			if v == nil || v == "" {
				return def
			}
			return v
		},
		"truncate": func(n int, v any) string { return runes.Truncate(fmt.Sprint(v), n) },
		"upper":    func(v any) string { return strings.ToUpper(fmt.Sprint(v)) },
		"lower":    func(v any) string { return strings.ToLower(fmt.Sprint(v)) },
		"trim":     func(v any) string { return strings.TrimSpace(fmt.Sprint(v)) },
		"trimPrefix": func(prefix string, v any) string {
			return strings.TrimPrefix(fmt.Sprint(v), prefix)
		},
		"time": func(layout string, v any) string {
			if t, ok := v.(time.Time); ok {
				return t.Format(layout)
			}
			return fmt.Sprint(v)
		},
	}
}

// compileTemplate parses src, makes every action go through the field's
// escaper, and checks field references against schema (nil: unchecked).
func compileTemplate(name, src string, esc func(string) string, schema reflect.Type) (*fieldTemplate, error) {
	t, err := template.New(name).Funcs(templateFuncs(esc)).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, cleanTemplateError(err, name)
	}
	addEscaper(t.Tree.Root)
	if schema != nil {
		if err := checkFields(t.Tree.Root, schema, false); err != nil {
			return nil, err
		}
	}
	return &fieldTemplate{name: name, t: t}, nil
}

// cleanTemplateError drops the "template: NAME:" prefix; the config error
// says where the template is.
func cleanTemplateError(err error, name string) error {
	msg := strings.TrimPrefix(err.Error(), "template: "+name+":")
	return fmt.Errorf("template: %s", strings.TrimSpace(msg))
}

// Name is the field the template renders (text, subject, dedup_key…).
func (f *fieldTemplate) Name() string { return f.name }

func (f *fieldTemplate) Render(data map[string]any) (string, error) {
	var b limitedBuilder
	if err := f.t.Execute(&b, data); err != nil {
		return "", cleanTemplateError(err, f.name)
	}
	return b.String(), nil
}

// limitedBuilder stops a runaway template (a range over a huge array) at
// maxRendered bytes.
type limitedBuilder struct{ strings.Builder }

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, fmt.Errorf("rendered text exceeds %d bytes", maxRendered)
	}
	return b.Builder.Write(p)
}

// addEscaper appends the escaper to every printing action, the way
// html/template rewrites its trees.
func addEscaper(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			addEscaper(c)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) == 0 {
			n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
				NodeType: parse.NodeCommand,
				Args:     []parse.Node{&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Ident: escFunc}},
			})
		}
	case *parse.IfNode:
		addEscaper(n.List)
		addEscaper(n.ElseList)
	case *parse.RangeNode:
		addEscaper(n.List)
		addEscaper(n.ElseList)
	case *parse.WithNode:
		addEscaper(n.List)
		addEscaper(n.ElseList)
	}
}

// checkFields reports references to fields the typed view does not have,
// such as {{ .chat.ratng }}. Inside range and with, dot is something else,
// so only $-rooted references are checked there.
func checkFields(n parse.Node, schema reflect.Type, dotMoved bool) error {
	check := func(idents []string, pos parse.Pos) error {
		if err := checkPath(schema, idents); err != nil {
			return fmt.Errorf("template: %v", err)
		}
		return nil
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			return checkEach(n.Nodes, schema, dotMoved)
		}
	case *parse.ActionNode:
		return checkFields(n.Pipe, schema, dotMoved)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				if err := checkEach(c.Args, schema, dotMoved); err != nil {
					return err
				}
			}
		}
	case *parse.FieldNode:
		if !dotMoved {
			return check(n.Ident, n.Pos)
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			return check(n.Ident[1:], n.Pos)
		}
	case *parse.ChainNode:
		return checkFields(n.Node, schema, dotMoved)
	case *parse.IfNode:
		return firstErr(checkFields(n.Pipe, schema, dotMoved), checkFields(n.List, schema, dotMoved), checkFields(n.ElseList, schema, dotMoved))
	case *parse.RangeNode:
		return firstErr(checkFields(n.Pipe, schema, dotMoved), checkFields(n.List, schema, true), checkFields(n.ElseList, schema, dotMoved))
	case *parse.WithNode:
		return firstErr(checkFields(n.Pipe, schema, dotMoved), checkFields(n.List, schema, true), checkFields(n.ElseList, schema, dotMoved))
	}
	return nil
}

// checkEach checks nodes in order and returns the first error.
func checkEach(nodes []parse.Node, schema reflect.Type, dotMoved bool) error {
	for _, c := range nodes {
		if err := checkFields(c, schema, dotMoved); err != nil {
			return err
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// checkPath follows names through the struct types of a typed view; below
// a map or an any, nothing is known and everything is allowed.
func checkPath(t reflect.Type, names []string) error {
	if len(names) > 0 && reservedKeys[names[0]] {
		return nil // not the event's: the worker adds it
	}
	walked := ""
	for _, name := range names {
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
			return nil
		}
		f, ok := exprField(t, name)
		if !ok {
			if walked == "" {
				return fmt.Errorf("the event has no field %q", name)
			}
			return fmt.Errorf("%s has no field %q", walked, name)
		}
		walked = strings.TrimPrefix(walked+"."+name, ".")
		t = f
	}
	return nil
}

func exprField(t reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("expr") == name {
			return t.Field(i).Type, true
		}
	}
	return nil, false
}

// reservedKeys are what the worker adds to the view a route's templates
// read, besides the event: .links (linksKey), .suppressed (the count a
// cooldown suppressed before this delivery), a digest's .events and
// .group, and a timer's .timer.
var reservedKeys = map[string]bool{linksKey: true, "suppressed": true, "events": true, "group": true, "timer": true}

// linksKey is where templates find the remote objects other sinks created
// for the same dedup key value: {{ (index .links "helpdesk").url }}.
const linksKey = "links"

// readsLinks reports whether the template refers to .links or $.links
// anywhere. Inside range or with, .links names something else, but a
// template that reads one is counted too: the cost of a wrong yes is one
// lookup per delivery.
func readsLinks(f *fieldTemplate) bool {
	found := false
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		if found || n == nil {
			return
		}
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					for _, a := range c.Args {
						walk(a)
					}
				}
			}
		case *parse.FieldNode:
			found = n.Ident[0] == linksKey
		case *parse.VariableNode:
			found = len(n.Ident) > 1 && n.Ident[0] == "$" && n.Ident[1] == linksKey
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.BranchNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.IfNode:
			walk(&n.BranchNode)
		case *parse.RangeNode:
			walk(&n.BranchNode)
		case *parse.WithNode:
			walk(&n.BranchNode)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	walk(f.t.Tree.Root)
	return found
}

// WithLinks returns a copy of data, an event view's, with .links: every
// sink of rt, each with what it created for the dedup key value (links),
// or empty. Every sink has an entry so that
// {{ (index .links "desk").url }} renders empty rather than failing on a
// missing one; entries are map[string]any, as the rest of the view.
func (rt *Runtime) WithLinks(data map[string]any, links map[string]router.Link) map[string]any {
	all := make(map[string]any, len(rt.Sinks))
	for name := range rt.Sinks {
		m := make(map[string]any, len(links[name]))
		for k, v := range links[name] {
			m[k] = v
		}
		all[name] = m
	}
	out := maps.Clone(data)
	out[linksKey] = all
	return out
}
