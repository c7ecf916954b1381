package rules

// Explanations of a rule's when: which comparison decided, with its
// operands' values, for the trial run and the config's tests.

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"

	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

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
	return runes.Truncate(s, maxValueRunes)
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

// Explain runs rule r's when: against view, an event of source src, and
// says why it matched or not, comparison by comparison. errMsg is the
// evaluation's error, if any, as a user reads it.
func (rt *Runtime) Explain(r *Rule, src *Source, view *router.View) (matched bool, errMsg string, explanation []string) {
	explanation = []string{}
	p := r.progs[src.Name]
	if p == nil {
		return false, "", append(explanation, fmt.Sprintf("the rule is for source %q only", r.Source))
	}
	if view.Ignored != "" { // as Match: no rule sees it
		return false, "", append(explanation, "the event is ignored: "+view.Ignored)
	}
	out, err := expr.Run(p, view.Env)
	if err != nil {
		errMsg = exprMessage(err, true)
	} else {
		matched, _ = out.(bool)
	}
	return matched, errMsg, ExplainWhen(rt.whenOf(r.Name), src.adapter.Env(), view.Env, out, err)
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
