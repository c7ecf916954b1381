package dispatch

// Redaction of sink secrets in what the trial run shows.

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router/config"
)

// redactedValue replaces secrets in trial output.
const redactedValue = "<redacted>"

// redactor hides a sink's secrets: every value its config took from the
// environment (${VAR}), in the forms a request may carry it.
type redactor struct{ secrets []string }

func newRedactor(values []string) *redactor {
	seen := map[string]bool{}
	r := &redactor{}
	for _, v := range values {
		// Very short values protect nothing and replacing them would
		// garble the output.
		if len(v) < 4 {
			continue
		}
		j, _ := json.Marshal(v)
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v), string(j[1 : len(j)-1]), base64.StdEncoding.EncodeToString([]byte(v))} {
			if !seen[f] {
				seen[f] = true
				r.secrets = append(r.secrets, f)
			}
		}
	}
	// Longest first: a secret that contains another goes whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

func (r *redactor) text(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redactedValue)
	}
	return s
}

// credentialHeaders are shown redacted whatever their value.
var credentialHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true}

// signatureHeaders hold signatures over the body, which a rendered request
// cannot show: they are made with the sink's key, per attempt.
var signatureHeaders = map[string]bool{"X-Siqsignature": true, "Webhook-Signature": true}

// signatureShown stands for a signature in a rendered request.
const signatureShown = "<signature, made when sent>"

// placeholderKey signs rendered requests of secured sinks; made once, on
// first use, since RSA key generation takes a while.
var placeholderKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("router: generate a placeholder RSA key: " + err.Error())
	}
	return k
})

func (r *redactor) request(c *config.CapturedRequest) *TrialRequest {
	out := &TrialRequest{Method: c.Method, URL: r.text(c.URL), Headers: map[string]string{}, Body: r.text(utf8Body(c.Body))}
	for k, vs := range c.Header {
		k = http.CanonicalHeaderKey(k)
		if credentialHeaders[k] {
			out.Headers[k] = redactedValue
			continue
		}
		if signatureHeaders[k] {
			out.Headers[k] = signatureShown
			continue
		}
		out.Headers[k] = r.text(strings.Join(vs, ", "))
	}
	return out
}

// envValues returns the values of the scalars under n that came from a
// ${VAR} reference (ExpandEnv marks them).
func envValues(n *yaml.Node) []string {
	var out []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Style&config.EnvRef != 0 && n.Value != "" {
			out = append(out, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}
