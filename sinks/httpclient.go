package sinks

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/jsonview"
	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/egress"
)

// Helpers shared by the sinks that speak HTTP: answer classification,
// bounded body reads, and keeping credentials out of error text.

// userAgent names us to every endpoint a sink calls.
const userAgent = "hookroute"

// maxResponseBody bounds what a sink reads of an answer: enough for any
// error message or id, and little enough that a hostile endpoint cannot
// make us buffer gigabytes.
const maxResponseBody = 64 << 10

// maxSnippet bounds the part of an answer's body quoted in an error, which
// ends up in the delivery log.
const maxSnippet = 200

// statusError is a non-2xx answer. The snippet helps a human see what the
// far side said (Slack webhooks answer "channel_is_archived" and the like).
type statusError struct {
	code    int
	snippet string
}

// Error says the status and quotes the start of the body.
func (e *statusError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
	if e.code >= 300 && e.code < 400 {
		s += " (redirects are not followed)"
	}
	if e.snippet != "" {
		s += ": " + e.snippet
	}
	return s
}

// classifyStatus turns an answer into nil (2xx), a retryable error (408,
// 425, 429, 5xx; a *router.RetryAfterError when the answer says when), or
// a permanent one. A 3xx is permanent: the client never follows redirects,
// since a redirect could send the event, and its credentials, anywhere,
// and re-sending to the same URL will be redirected again.
func classifyStatus(code int, h http.Header, body []byte, now time.Time) error {
	if code >= 200 && code < 300 {
		return nil
	}
	err := &statusError{code: code, snippet: snippet(body)}
	if code == http.StatusRequestTimeout || code == http.StatusTooEarly || code == http.StatusTooManyRequests || code >= 500 {
		if after := router.ParseRetryAfter(h.Get("Retry-After"), now); after > 0 {
			return &router.RetryAfterError{Err: err, After: after}
		}
		return err
	}
	return router.Permanent(err)
}

// snippet makes a short, printable, single-line excerpt of body for an
// error message: control characters and invalid UTF-8 could garble logs
// and terminals.
func snippet(body []byte) string {
	var b strings.Builder
	space := false
	for _, r := range string(body) {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == utf8.RuneError {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() > maxSnippet {
			break
		}
	}
	s := b.String()
	if len(s) <= maxSnippet {
		return s
	}
	cut := maxSnippet - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// readBody reads at most maxResponseBody bytes of resp's body and closes
// it. A longer body costs the connection its reuse, which is cheaper than
// reading it all.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
}

// send does req with client and classifies the answer. It returns the
// status (0 when none came), the body read (at most maxResponseBody, with
// the secrets already removed) and the error, with its URL replaced by
// shown.
func send(client *http.Client, req *http.Request, red *redact.Redactor, shown string) (int, []byte, error) {
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, egress.ErrBlocked) {
			// Retrying cannot make a refused destination allowed.
			return 0, nil, router.Permanent(red.Err(err, shown))
		}
		return 0, nil, red.Err(err, shown)
	}
	// A body that breaks off is ignored: a 2xx was still accepted
	// (reporting a failure would only send the delivery twice), and an
	// error status is classified by its code.
	body, _ := readBody(resp)
	body = []byte(red.Text(string(body)))
	return resp.StatusCode, body, classifyStatus(resp.StatusCode, resp.Header, body, time.Now())
}

// showURL is how an error names a URL: scheme and host only, since paths
// and queries often carry tokens.
func showURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + "/…"
}

// checkURL reports what is wrong with raw as an endpoint, without quoting
// it (it may be a credential).
func checkURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, "must be set"
	case err != nil:
		return nil, "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an http or https URL"
	case u.Host == "":
		return nil, "has no host"
	case u.User != nil:
		return nil, "must not carry a user or password (use headers or a token instead)"
	}
	if _, err := egress.CheckURL(raw); err != nil {
		return nil, err.Error() // fixed texts: they never quote the URL
	}
	return u, ""
}

// configProblems collects a sink's field-level config errors; the router
// adds the sink's path in the file.
type configProblems config.ConfigErrors

func (p *configProblems) add(key, format string, args ...any) {
	*p = append(*p, &config.ConfigError{Path: key, Msg: fmt.Sprintf(format, args...)})
}

func (p configProblems) err() error {
	if len(p) == 0 {
		return nil
	}
	return config.ConfigErrors(p)
}

// escapeJSONString escapes s for use inside a JSON string literal, without
// the quotes, so that a template such as {"text": "{{ .chat.feedback }}"}
// stays valid JSON whatever a visitor typed.
func escapeJSONString(s string) string {
	b := jsonview.AppendString(make([]byte, 0, len(s)+2), s)
	return string(b[1 : len(b)-1])
}
