package redact

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestErr(t *testing.T) {
	const secret = "https://hooks.slack.com/services/T0/B0/s3cret"
	red := New(secret, "/services/T0/B0/s3cret", "ab") // "ab" is too short to hide
	ue := &url.Error{Op: "Post", URL: secret, Err: errors.New("dial tcp: connection refused")}

	got := red.Err(ue, "https://hooks.slack.com/…")
	if strings.Contains(got.Error(), "s3cret") {
		t.Errorf("url.Error leaks: %v", got)
	}
	var ue2 *url.Error
	if !errors.As(got, &ue2) || ue2.Op != "Post" {
		t.Errorf("want a *url.Error still, got %T", got)
	}

	wrapped := red.Err(fmt.Errorf("post webhook: %w", ue), "hook")
	if strings.Contains(wrapped.Error(), "s3cret") || !strings.Contains(wrapped.Error(), "connection refused") {
		t.Errorf("wrapped url.Error: %v", wrapped)
	}

	ctxErr := red.Err(&url.Error{Op: "Post", URL: secret, Err: context.DeadlineExceeded}, "hook")
	if !errors.Is(ctxErr, context.DeadlineExceeded) {
		t.Errorf("the cause is lost: %v", ctxErr)
	}

	plain := red.Err(errors.New("server said GET /services/T0/B0/s3cret ab"), "hook")
	if plain.Error() != "server said GET "+Placeholder+" ab" {
		t.Errorf("plain: %v", plain)
	}
	if red.Err(nil, "x") != nil {
		t.Error("nil error became non-nil")
	}
}

// TestTextHidesEveryForm: a secret is hidden as is and in each encoding a
// request may carry it in; a secret inside a longer one goes with it.
func TestTextHidesEveryForm(t *testing.T) {
	const secret = `p@ss w/rd"&<`
	red := New(secret, "abc", "p@ss") // "abc" is too short to hide
	for _, form := range []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		`p@ss w/rd\"\u0026\u003c`, // inside a JSON string
		base64.StdEncoding.EncodeToString([]byte(secret)),
	} {
		if got := red.Text("x " + form + " y"); got != "x "+Placeholder+" y" {
			t.Errorf("%s: got %q", form, got)
		}
	}
	if got := red.Text("abc p@ss"); got != "abc "+Placeholder {
		t.Errorf("got %q", got)
	}
	var none *Redactor
	if none.Text("p@ss") != "p@ss" || none.Err(errors.New("p@ss"), "x").Error() != "p@ss" {
		t.Error("a nil Redactor hid something")
	}
}

func TestCredentialHeader(t *testing.T) {
	for name, want := range map[string]bool{"Authorization": true, "proxy-authorization": true, "COOKIE": true, "X-Api-Key": false, "Content-Type": false} {
		if CredentialHeader(name) != want {
			t.Errorf("%s: want %v", name, want)
		}
	}
}
