// Package redact keeps credentials out of what hookroute shows: the errors
// a sink returns (they end up in the delivery log) and the requests a trial
// run renders. Both hide by the same rules, so that a secret hidden in one
// cannot show in the other.
package redact

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Placeholder stands for what was hidden.
const Placeholder = "<redacted>"

// Redactor hides a fixed set of secrets. The zero of *Redactor, nil, hides
// nothing, for callers that may have no secrets to hide.
type Redactor struct {
	// secrets are the forms of every secret, longest first.
	secrets []string
}

// New returns a Redactor that hides each secret given in every form a
// request or an answer may carry it in: as is, query- and path-escaped,
// escaped inside a JSON string, and in standard base64. A secret travels
// in any of them (a token in a query string or a JSON body, a password in
// a Basic header), and a far side may echo any of them back.
//
// Values shorter than 4 bytes are skipped: they protect nothing, and
// replacing them would garble the text.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	for _, v := range secrets {
		if len(v) < 4 {
			continue
		}
		j, _ := json.Marshal(v) // a string always encodes
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v), string(j[1 : len(j)-1]), base64.StdEncoding.EncodeToString([]byte(v))} {
			if !seen[f] {
				seen[f] = true
				r.secrets = append(r.secrets, f)
			}
		}
	}
	// Longest first: a secret that contains another must go whole.
	slices.SortStableFunc(r.secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return r
}

// Text returns s with every secret replaced by Placeholder.
func (r *Redactor) Text(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Placeholder)
	}
	return s
}

// Err returns err with the secrets removed from its text, and the URL of
// any *url.Error in it replaced by shown: a *url.Error quotes the whole
// URL, and a URL may be a credential (a Slack webhook) or carry one in its
// path or query. Context and network errors can still be recognised with
// errors.Is and errors.As: the result unwraps to the cause, itself
// redacted, and a bare *url.Error stays one.
func (r *Redactor) Err(err error, shown string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		if msg := r.Text(err.Error()); msg != err.Error() {
			return &redactedError{msg: msg}
		}
		return err
	}
	cause := ue.Err
	if cause != nil && r.Text(cause.Error()) != cause.Error() {
		cause = &redactedError{msg: r.Text(cause.Error())}
	}
	if ue == err { // the common case: keep the *url.Error shape
		return &url.Error{Op: ue.Op, URL: shown, Err: cause}
	}
	msg := strings.ReplaceAll(err.Error(), strconv.Quote(ue.URL), strconv.Quote(shown))
	msg = r.Text(strings.ReplaceAll(msg, ue.URL, shown))
	return &redactedError{msg: msg, cause: cause}
}

// redactedError is an error whose text had credentials removed. It unwraps
// to the cause without its URL, so that context and network errors can
// still be recognised.
type redactedError struct {
	msg   string
	cause error
}

// Error returns the text without the credentials.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the cause, itself free of credentials.
func (e *redactedError) Unwrap() error { return e.cause }

// credentialHeaders carry credentials whatever their value, whether or not
// it came from a secret the Redactor knows (a sink may compute it).
var credentialHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true}

// CredentialHeader reports whether the header name (any case) carries a
// credential, to be shown as Placeholder whatever its value.
func CredentialHeader(name string) bool {
	return credentialHeaders[http.CanonicalHeaderKey(name)]
}
