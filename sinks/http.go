package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/verify"
)

func init() {
	register("http",
		[]router.FieldSpec{
			// Interpolated values are escaped for a JSON string, so that
			// {"text": "{{ .chat.feedback }}"} stays valid JSON whatever a
			// visitor typed. Without body, the event view is sent as JSON.
			{Name: "body", Escape: escapeJSONString},
		},
		func() httpConfig { return httpConfig{Method: http.MethodPost, ContentType: "application/json"} },
		newHTTPSink)
}

// httpConfig configures the generic HTTP sink, which sends each delivery
// to one URL with an Idempotency-Key header holding the delivery id.
type httpConfig struct {
	// URL receives the requests; http or https, without user:password
	// (put credentials in headers). Errors show only its scheme and host.
	URL string `yaml:"url"`
	// Method is POST (the default), PUT or PATCH.
	Method string `yaml:"method"`
	// Headers are added to every request. Give credentials as ${VAR};
	// values never appear in errors.
	Headers map[string]string `yaml:"headers"`
	// ContentType is the body's media type; default application/json.
	ContentType string `yaml:"content_type"`
	// Secured signs every body, over the exact bytes sent (README: Security, secured outbound webhooks),
	// as Signing says.
	Secured bool `yaml:"secured"`
	// Signing is a secured sink's scheme: "salesiq" (the default), an
	// RSA-SHA256 PKCS#1 v1.5 signature in base64 in x-siqsignature, with
	// the sink's oldest key from the key API (POST
	// /api/v2/{screenname}/webhooks/{sink}/keys), byte-compatible with
	// SalesIQ's own webhooks; or "standard-webhooks": webhook-id (the
	// delivery id), webhook-timestamp (per attempt) and webhook-signature
	// ("v1," and the base64 HMAC-SHA256 of id.timestamp.body) with
	// Secret.
	Signing string `yaml:"signing"`
	// Secret is the Standard Webhooks secret ("whsec_" and base64), given
	// as ${VAR}; only with signing: standard-webhooks.
	Secret router.Secret `yaml:"secret"`
}

// Signing schemes of a secured http sink.
const (
	signingSalesIQ          = "salesiq"
	signingStandardWebhooks = "standard-webhooks"
)

func (c *httpConfig) validate() (*url.URL, error) {
	var p configProblems
	u, msg := checkURL(c.URL)
	if msg != "" {
		p.add("url", "%s", msg)
	}
	c.Method = strings.ToUpper(c.Method)
	if c.Method != http.MethodPost && c.Method != http.MethodPut && c.Method != http.MethodPatch {
		p.add("method", "want POST, PUT or PATCH")
	}
	if _, _, err := mime.ParseMediaType(c.ContentType); err != nil {
		p.add("content_type", "not a media type: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		why, reserved := reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)]
		switch key := "headers." + name; {
		case !validHeaderName(name):
			p.add(key, "not a valid header name")
		case reserved:
			p.add(key, "is set by hookroute%s", why)
		case strings.ContainsAny(c.Headers[name], "\r\n\x00"):
			p.add(key, "value must be one line") // never quote it: it may be a token
		}
	}
	c.validateSigning(&p)
	return u, p.err()
}

// validateSigning checks secured, signing and secret together. Messages
// never quote the secret.
func (c *httpConfig) validateSigning(p *configProblems) {
	if !c.Secured {
		if c.Signing != "" {
			p.add("signing", "only with secured: true")
		}
		if c.Secret != "" {
			p.add("secret", "only with secured: true and signing: standard-webhooks")
		}
		return
	}
	if c.Signing == "" {
		c.Signing = signingSalesIQ
	}
	switch c.Signing {
	case signingSalesIQ:
		if c.Secret != "" {
			p.add("secret", "only with signing: standard-webhooks (salesiq signing uses the sink's keys from the key API)")
		}
	case signingStandardWebhooks:
		if c.Secret == "" {
			p.add("secret", "signing: standard-webhooks needs secret: ${NAME} (a whsec_ secret)")
		} else if _, err := verify.NewStandardWebhooks([]string{c.Secret.Reveal()}, 0); err != nil {
			p.add("secret", "not a Standard Webhooks secret (want whsec_ followed by base64)")
		}
	default:
		p.add("signing", "want salesiq or standard-webhooks")
	}
	for name := range c.Headers {
		if signed, _ := verify.SigningHeader(name); signed {
			p.add("headers."+name, "is set by hookroute on a secured sink (the signature)")
		}
	}
}

// httpSink sends deliveries to one URL.
type httpSink struct {
	conf   httpConfig
	url    string
	shown  string // the URL as errors show it
	client *http.Client
	red    *redact.Redactor
	now    func() time.Time // the Standard Webhooks timestamp's clock
}

var (
	_ router.Sink          = (*httpSink)(nil)
	_ router.Secured       = (*httpSink)(nil)
	_ router.EventJSONSink = (*httpSink)(nil)
)

// EventJSONOnly is true: with no body field, the event view as JSON is
// all an http sink sends of the event.
func (*httpSink) EventJSONOnly() bool { return true }

func newHTTPSink(r *Registry, _ string, c httpConfig) (*httpSink, error) {
	u, err := c.validate()
	if err != nil {
		return nil, err
	}
	secrets := make([]string, 0, 2*len(c.Headers)+1)
	for _, v := range c.Headers {
		// "Bearer xyz": a far side echoing the token alone must not leak it.
		secrets = append(secrets, v, v[strings.LastIndexByte(v, ' ')+1:])
	}
	secrets = append(secrets, u.RawQuery, c.Secret.Reveal())
	return &httpSink{conf: c, url: u.String(), shown: showURL(u), client: r.Client, red: redact.New(secrets...), now: time.Now}, nil
}

// body is what a delivery sends: the rendered body field, or the event
// view as JSON when the route sets none.
func (s *httpSink) body(d *router.Delivery) ([]byte, error) {
	if b, ok := d.Fields["body"]; ok {
		return []byte(b), nil
	}
	if d.EventJSON != nil {
		return d.EventJSON, nil
	}
	b, err := encodeEvent(d.Event)
	if err != nil {
		return nil, router.Permanent(fmt.Errorf("http: encode event: %w", err))
	}
	return b, nil
}

// Deliver sends d. 2xx is success; 408, 425, 429 and 5xx are retried
// (honouring Retry-After); anything else, redirects included, is
// permanent.
func (s *httpSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	body, err := s.body(d)
	if err != nil {
		return router.Result{}, err
	}
	req, err := http.NewRequestWithContext(ctx, s.conf.Method, s.url, bytes.NewReader(body))
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("http: %w", s.red.Err(err, s.shown)))
	}
	for k, v := range s.conf.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", s.conf.ContentType)
	req.Header.Set("Idempotency-Key", d.ID)
	if err := s.sign(req.Header, d, body); err != nil {
		return router.Result{}, err
	}
	code, _, err := send(s.client, req, s.red, s.shown)
	switch {
	case err != nil && code == 0: // the *url.Error names method and URL
		return router.Result{}, fmt.Errorf("http: %w", err)
	case err != nil:
		return router.Result{StatusCode: code}, fmt.Errorf("http: %s %s: %w", s.conf.Method, s.shown, err)
	}
	return router.Result{StatusCode: code}, nil
}

// reservedHeaders are set by the sink or by net/http; letting the config
// set them would break the request or its idempotency.
var reservedHeaders = map[string]string{
	"Host":              "",
	"Content-Length":    "",
	"Transfer-Encoding": "",
	"Connection":        "",
	"Content-Type":      " (use content_type)",
	"Idempotency-Key":   " (it is the delivery id)",
	"User-Agent":        "",
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.1).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// Secured implements router.Secured: the worker hands a salesiq-signing
// sink its key with every delivery, and holds the deliveries back while
// there is none. Standard Webhooks signing needs no key from the store.
func (s *httpSink) Secured() bool {
	return s.conf.Secured && s.conf.Signing == signingSalesIQ
}

// sign sets the signature headers of a secured sink over body, the exact
// bytes sent. Its errors never carry key material.
func (s *httpSink) sign(h http.Header, d *router.Delivery, body []byte) error {
	if !s.conf.Secured {
		return nil
	}
	switch s.conf.Signing {
	case signingSalesIQ:
		if d.SigningKey == nil {
			// The worker never lets this happen; a caller that did
			// (a trial, a test) gets an error, not an unsigned request.
			return errors.New("http: the sink is secured and this delivery came without its signing key; generate one with `hookroute keys generate`")
		}
		sig, err := verify.SignSalesIQ(d.SigningKey, body)
		if err != nil {
			// Not permanent: a rotation may bring a key that works.
			return fmt.Errorf("http: sign: %w", err)
		}
		h.Set("x-siqsignature", sig)
	case signingStandardWebhooks:
		now := s.now()
		sig, err := verify.SignStandardWebhooks(s.conf.Secret.Reveal(), d.ID, now, body)
		if err != nil {
			return router.Permanent(fmt.Errorf("http: sign: %w", err))
		}
		h.Set("webhook-id", d.ID)
		h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("webhook-signature", sig)
	}
	return nil
}
