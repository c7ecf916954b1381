package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
)

// Shared by the ticketing sinks (zendesk, jira, freshdesk, zohodesk,
// servicenow, github, pagerduty).
//
// Every ticket sink takes base_url, which replaces the vendor's host
// (self-hosted or regional instances, proxies, tests): a base_url of
// http://127.0.0.1:9000 for Zendesk sends to
// http://127.0.0.1:9000/api/v2/tickets. Routes use subject and body for a
// ticket's title and text on every ticket sink.
//
// The router hands a sink d.DedupKey and d.RemoteID: when RemoteID is set,
// an object was created earlier for the same key and the sink follows up on
// it (a comment, a note, a work note) instead of creating another; when it
// is empty the sink creates one and returns its id in Result.RemoteID.
// Deliveries with one key never run at once.
//
// Creates are not idempotent on most of these APIs, and an answer can be
// lost after the object was made (a timeout after the request went out).
// Sinks without an idempotency key therefore mark what they create with
// the dedup key (or, without one, the delivery id) and search for the mark
// before creating whenever an earlier attempt may have created it: see
// mayExist.

// ticketFields returns the route fields of a ticket sink: subject (plain
// text, required) and body (escaped by bodyEscape for the target format),
// then the sink's own.
func ticketFields(bodyEscape func(string) string, extra ...router.FieldSpec) []router.FieldSpec {
	return append([]router.FieldSpec{
		{Name: "subject", Required: true},
		{Name: "body", Escape: bodyEscape},
	}, extra...)
}

// ticketBaseURL returns base (validated) or, when empty, the vendor's
// default. The returned URL has no trailing slash.
func ticketBaseURL(base, vendorDefault string) (*url.URL, string) {
	if base == "" {
		base = vendorDefault
	}
	u, msg := checkURL(base)
	if msg != "" {
		return nil, msg
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, ""
}

// endpoint joins a path (with its own query, if any) to a base URL.
func endpoint(base *url.URL, path string) *url.URL {
	u := *base
	p, q, _ := strings.Cut(path, "?")
	u.Path = base.Path + p
	u.RawQuery = q
	return &u
}

// escapeHTML escapes user text for HTML descriptions (Freshdesk, Zoho
// Desk), so a visitor's "<script>" arrives as text.
func escapeHTML(s string) string { return html.EscapeString(s) }

// splitList reads a comma-separated route field (tags, labels) into its
// trimmed, non-empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// jsonRequest builds a request with a JSON body (nil: no body).
func jsonRequest(ctx context.Context, method string, u *url.URL, body any) (*http.Request, error) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, router.Permanent(fmt.Errorf("encode request: %w", err))
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, router.Permanent(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// mayExist reports whether a create might already have happened without
// our hearing of it, so that the sink should search for its mark first:
// after a failed attempt of this delivery, or whenever a dedup key has no
// object recorded yet (an earlier delivery with the key may have timed out
// after creating one).
func mayExist(d *router.Delivery) bool {
	return d.RemoteID == "" && (d.Attempt > 1 || d.DedupKey != "")
}

// followUpFound decides what a found mark means. On a delivery's first
// attempt the object cannot be its own, so another delivery with the same
// dedup key made it and lost the answer: this one follows up on it, and
// followUpFound returns the delivery aimed at it, with what the search
// answered as its RemoteLink (for what the follow-up's answer lacks). On
// a later attempt the object is taken to be this delivery's own lost
// create. (The one case this gets wrong — an earlier attempt that failed
// before sending, while another delivery's create was lost — costs a
// comment, never a second object.)
func followUpFound(d *router.Delivery, remoteID string, link router.Link) (*router.Delivery, bool) {
	if d.Attempt > 1 {
		return nil, false
	}
	f := *d
	f.RemoteID, f.RemoteLink = remoteID, link
	return &f, true
}

// findFunc looks for the object an earlier, unheard create may have made;
// it returns the object's id ("" if there is none) and its Link.
type findFunc func(ctx context.Context) (code int, remoteID string, link router.Link, err error)

// createOrFollowUp is the flow of a sink without an idempotency key: follow
// up on d.RemoteID when set; otherwise, where a create may already have
// happened (mayExist), search for the mark first — following up on
// another delivery's object, or taking it as this delivery's own (see
// followUpFound) — and create only when nothing is found. A failed search
// is returned as is: creating blind could make a second object.
func createOrFollowUp(ctx context.Context, d *router.Delivery, find findFunc,
	followUp, create func(context.Context, *router.Delivery) (router.Result, error)) (router.Result, error) {
	if d.RemoteID != "" {
		return followUp(ctx, d)
	}
	if mayExist(d) {
		code, id, link, err := find(ctx)
		if err != nil {
			return router.Result{StatusCode: code}, err
		}
		if id != "" {
			if found, ok := followUpFound(d, id, link); ok {
				return followUp(ctx, found)
			}
			return router.Result{StatusCode: code, RemoteID: id, Link: link}, nil
		}
	}
	return create(ctx, d)
}

// newLink returns the Link of the object id: "id", then each of the
// other entries (key, value pairs) that is not empty, since a template
// reads a missing entry and an empty one alike.
func newLink(id string, entries ...string) router.Link {
	l := router.Link{"id": id}
	for i := 0; i+1 < len(entries); i += 2 {
		if entries[i+1] != "" {
			l[entries[i]] = entries[i+1]
		}
	}
	return l
}

// recorded returns entry key of the Link recorded with d.RemoteID, "" if
// none was or it describes another object: a follow-up's answer often
// lacks what only the create's answer had (a Zoho Desk webUrl).
func recorded(d *router.Delivery, key string) string {
	if d.RemoteID == "" || d.RemoteLink["id"] != d.RemoteID {
		return ""
	}
	return d.RemoteLink[key]
}

// siteRoot is the web root of a sink whose site is named in its config
// (a Zendesk subdomain, a ServiceNow instance): https://{name}{suffix}.
// Without a name it is base, the API's root. A name wins over base_url
// because base_url may be a proxy in front of the API, where no person
// opens a ticket. The name is one validated DNS label.
func siteRoot(name, suffix string, base *url.URL) *url.URL {
	if name == "" {
		return base
	}
	return &url.URL{Scheme: "https", Host: strings.ToLower(name) + suffix}
}

// webPage returns the page at the given path segments under root, each
// segment path-escaped, so that an id from an answer cannot climb out of
// its place or add a query. Only root's scheme, host and path are kept:
// a base_url's query or fragment may carry a token, and a link is shown
// to people.
func webPage(root *url.URL, segments ...string) string {
	if root == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(root.Scheme + "://" + root.Host + strings.TrimSuffix(root.EscapedPath(), "/"))
	for _, s := range segments {
		b.WriteString("/" + url.PathEscape(s))
	}
	return b.String()
}

// answerURL returns raw, a page URL an API answered, if it is an
// absolute http or https URL without a user; "" otherwise, so that a
// broken or hostile answer cannot hand templates a javascript: link.
func answerURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return ""
	}
	return u.String()
}

// authHeader returns the Authorization header of a sink that takes either
// an OAuth bearer token or a user and secret for Basic auth, and a
// redactor that hides the secret in every form it travels in.
func authHeader(bearer router.Secret, user string, secret router.Secret) (string, *redact.Redactor) {
	if bearer != "" {
		return "Bearer " + bearer.Reveal(), redact.New(bearer.Reveal())
	}
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret.Reveal()))
	return "Basic " + basic, redact.New(secret.Reveal(), basic)
}
