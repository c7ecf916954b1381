package rules

import (
	"errors"
	"fmt"
	"maps"
	"reflect"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/hookroute/hookroute/router"
)

// Matcher is a compiled silence matcher: an expr expression over an
// event's view, as rules see it, plus rule, sink and source. It is
// compiled per source, since each source kind has its own view.
type Matcher struct {
	Src   string
	progs map[string]*vm.Program
}

// salesiqMatchEnv is the SalesIQ view with the delivery's names beside
// it, so that a matcher is type-checked as strictly as a rule's when:.
type salesiqMatchEnv struct {
	*router.SalesIQEvent
	Rule   string `expr:"rule"`
	Sink   string `expr:"sink"`
	Source string `expr:"source"`
}

// MatcherError is a matcher that does not compile, with its position in
// the expression (1-based; 0 when unknown).
type MatcherError struct {
	Line, Column int
	Msg          string
}

func (e *MatcherError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// CompileMatcher compiles a silence matcher for every source of rt. It
// fails, with the first error's position, unless it compiles for at
// least one: a matcher that can match nothing is a mistake.
func (rt *Runtime) CompileMatcher(src string) (*Matcher, error) {
	m := &Matcher{Src: src, progs: map[string]*vm.Program{}}
	var first error
	for _, s := range rt.Sources {
		p, err := compileMatcher(src, s.adapter.Env())
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		m.progs[s.Name] = p
	}
	if len(m.progs) == 0 {
		if first == nil {
			first = errors.New("the config has no source to match events of")
		}
		var fe *file.Error
		if errors.As(first, &fe) {
			return nil, &MatcherError{Line: fe.Line, Column: fe.Column + 1, Msg: fe.Message}
		}
		return nil, &MatcherError{Msg: first.Error()}
	}
	return m, nil
}

func compileMatcher(src string, env any) (*vm.Program, error) {
	opts := []expr.Option{expr.AsBool(), expr.MaxNodes(2000)}
	switch e := env.(type) {
	case router.SalesIQEvent, *router.SalesIQEvent:
		opts = append(opts, expr.Env(salesiqMatchEnv{}))
	case map[string]any:
		generic := maps.Clone(e)
		generic["rule"], generic["sink"], generic["source"] = "", "", ""
		opts = append(opts, expr.Env(generic), expr.AllowUndefinedVariables())
	default:
		return nil, fmt.Errorf("matchers are not supported for views of type %s", reflect.TypeOf(env))
	}
	return expr.Compile(src, opts...)
}

// Match reports whether the delivery of view's event to sink by rule is
// one the matcher selects. A source it did not compile for matches
// nothing; a run-time error matches nothing and is returned.
func (m *Matcher) Match(source string, view *router.View, rule, sink string) (bool, error) {
	p := m.progs[source]
	if p == nil {
		return false, nil
	}
	var env any
	if ev, ok := view.Env.(*router.SalesIQEvent); ok {
		env = salesiqMatchEnv{SalesIQEvent: ev, Rule: rule, Sink: sink, Source: source}
	} else {
		data := maps.Clone(view.Data())
		data["rule"], data["sink"], data["source"] = rule, sink, source
		env = data
	}
	out, err := expr.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}
