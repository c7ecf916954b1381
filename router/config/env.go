package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// expandEnv replaces ${NAME}, ${NAME:-default} and ${NAME:?message} in s
// with environment values; "$${" stands for a literal "${". It reports how
// s used references. An unset variable without a default
// is an error that names the variable (never its value); ${NAME:?message}
// makes an unset or empty one an error with the config's own message, so
// that the config can say how to provide it.
//
// A variable that is unset or empty while NAME_FILE is set is read from the
// file NAME_FILE names, trailing newlines removed: the way container
// platforms hand out secrets (mounted files), without a second config.
func ExpandString(s string, lookup func(string) (string, bool)) (string, envUse, error) {
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
		ref, err := parseEnvRef(s[i+2 : i+j])
		s = s[i+j+1:]
		if err != nil {
			return "", use, err
		}
		use.refs++
		use.hasDefault = use.hasDefault || ref.op == ":-" && ref.arg != ""
		v, err := ref.value(lookup)
		if err != nil {
			return "", use, err
		}
		b.WriteString(v)
	}
}

// envRef is one reference: ${name}, ${name:-arg} or ${name:?arg}.
type envRef struct {
	name string
	op   string // "", ":-" or ":?"
	arg  string // the default, or the message
}

// parseEnvRef parses what is between "${" and "}". A ':' not followed by
// '-' or '?' stays in the name, which then fails validation.
func parseEnvRef(expr string) (envRef, error) {
	r := envRef{name: expr}
	if k := strings.IndexByte(expr, ':'); k >= 0 && k+1 < len(expr) && (expr[k+1] == '-' || expr[k+1] == '?') {
		r = envRef{name: expr[:k], op: expr[k : k+2], arg: expr[k+2:]}
	}
	if !validEnvName(r.name) {
		return r, fmt.Errorf("invalid environment variable name %q", r.name)
	}
	return r, nil
}

// value resolves the reference. Its errors name the variable and never
// its value.
func (r envRef) value(lookup func(string) (string, bool)) (string, error) {
	v, ok, err := lookupEnv(r.name, lookup)
	if err != nil {
		return "", err
	}
	switch {
	case ok && v != "":
		return v, nil
	case r.op == ":-":
		return r.arg, nil
	case r.op == ":?":
		state := "not set"
		if ok {
			state = "empty"
		}
		if r.arg == "" {
			return "", fmt.Errorf("environment variable %s is %s", r.name, state)
		}
		return "", fmt.Errorf("environment variable %s is %s: %s", r.name, state, r.arg)
	case ok:
		// Set and empty, no default: empty, as written.
		return "", nil
	default:
		return "", fmt.Errorf("environment variable %s is not set", r.name)
	}
}

// maxEnvFile bounds a NAME_FILE file: it holds a key or a token, and the cap
// keeps a wrong path (a log, a device) from being read whole.
const maxEnvFile = 64 << 10

// lookupEnv looks name up, and when it is unset or empty, the file that
// name_FILE names. Errors name the variable, never its value or the path.
func lookupEnv(name string, lookup func(string) (string, bool)) (string, bool, error) {
	v, ok := lookup(name)
	if v != "" {
		return v, ok, nil
	}
	p, _ := lookup(name + "_FILE")
	if p == "" {
		return v, ok, nil
	}
	data, err := readEnvFile(p)
	if err != nil {
		return "", false, fmt.Errorf("environment variable %s_FILE: %v", name, err)
	}
	return strings.TrimRight(string(data), "\r\n"), true, nil
}

// readEnvFile reads a NAME_FILE file; its errors leave the path out.
func readEnvFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, envFileError(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err != nil {
		return nil, envFileError(err)
	}
	if len(data) > maxEnvFile {
		return nil, fmt.Errorf("the file it names is larger than %d KiB", maxEnvFile>>10)
	}
	return data, nil
}

func envFileError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot read the file it names: %v", err)
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
