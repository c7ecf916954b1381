package router

import (
	"fmt"
	"os"
	"strings"
)

// expandEnv replaces ${NAME} and ${NAME:-default} in s with environment
// values; "$${" stands for a literal "${". It reports whether s held a
// reference at all. An unset variable without a default is an error that
// names the variable (never its value).
func expandEnv(s string, lookup func(string) (string, bool)) (string, bool, error) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var b strings.Builder
	ref := false
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), ref, nil
		}
		if i > 0 && s[i-1] == '$' { // escaped: $${ → ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", ref, fmt.Errorf("unterminated ${ reference")
		}
		expr := s[i+2 : i+j]
		s = s[i+j+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", ref, fmt.Errorf("invalid environment variable name %q", name)
		}
		ref = true
		v, ok := lookup(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", ref, fmt.Errorf("environment variable %s is not set", name)
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
