package router

import (
	"fmt"
	"os"
	"strings"
)

// envUse is how a scalar used ${...} references: whether it is one
// reference alone, as a credential must be.
type envUse struct {
	refs       int  // ${...} references
	literal    bool // text outside them (an escaped "$${" included)
	hasDefault bool // a ${NAME:-default} with a non-empty default
}

// ref reports whether the scalar held a reference at all.
func (u envUse) ref() bool { return u.refs > 0 }

// expandEnv replaces ${NAME} and ${NAME:-default} in s with environment
// values; "$${" stands for a literal "${". It reports how s used
// references. An unset variable without a default is an error that names
// the variable (never its value).
func expandEnv(s string, lookup func(string) (string, bool)) (string, envUse, error) {
	var use envUse
	if !strings.Contains(s, "${") {
		return s, use, nil
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			use.literal = use.literal || s != ""
			b.WriteString(s)
			return b.String(), use, nil
		}
		if i > 0 && s[i-1] == '$' { // escaped: $${ → ${
			use.literal = true
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		use.literal = use.literal || i > 0
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", use, fmt.Errorf("unterminated ${ reference")
		}
		expr := s[i+2 : i+j]
		s = s[i+j+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", use, fmt.Errorf("invalid environment variable name %q", name)
		}
		use.refs++
		use.hasDefault = use.hasDefault || def != ""
		v, ok := lookup(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", use, fmt.Errorf("environment variable %s is not set", name)
		}
	}
}

func validEnvName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		if r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}
