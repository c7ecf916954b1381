package trial

// Redaction of sink secrets in what the trial run shows.

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

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

// redactRequest is c as a trial shows it: red's secrets hidden, credential
// headers hidden whatever their value, and signatures, which a stand-in
// key made, shown as made when sent.
func redactRequest(red *redact.Redactor, c *config.CapturedRequest) *Request {
	out := &Request{Method: c.Method, URL: red.Text(c.URL), Headers: map[string]string{}, Body: red.Text(utf8Body(c.Body))}
	for k, vs := range c.Header {
		k = http.CanonicalHeaderKey(k)
		if redact.CredentialHeader(k) {
			out.Headers[k] = redact.Placeholder
			continue
		}
		if _, signature := verify.SigningHeader(k); signature {
			out.Headers[k] = signatureShown
			continue
		}
		out.Headers[k] = red.Text(strings.Join(vs, ", "))
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
