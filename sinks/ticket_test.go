package sinks

import (
	"context"
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/hookroute/hookroute/router"
)

// wantLink checks a delivery's Link entry by entry: every entry of want,
// and no other.
func wantLink(t *testing.T, what string, got, want router.Link) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: Link\n got %v\nwant %v", what, got, want)
	}
}

func TestNewLinkLeavesOutEmptyEntries(t *testing.T) {
	wantLink(t, "newLink", newLink("7", "number", "7", "url", "", "key"), router.Link{"id": "7", "number": "7"})
}

func TestRecorded(t *testing.T) {
	d := &router.Delivery{RemoteID: "7", RemoteLink: router.Link{"id": "7", "url": "https://x/7"}}
	if got := recorded(d, "url"); got != "https://x/7" {
		t.Errorf("recorded url %q", got)
	}
	// A link recorded for another object says nothing of this one.
	d.RemoteLink["id"] = "8"
	if got := recorded(d, "url"); got != "" {
		t.Errorf("url of another object: %q", got)
	}
	if got := recorded(&router.Delivery{RemoteID: "7"}, "url"); got != "" {
		t.Errorf("nothing recorded: %q", got)
	}
	if got := recorded(&router.Delivery{RemoteLink: router.Link{"id": "", "url": "u"}}, "url"); got != "" {
		t.Errorf("no remote id: %q", got)
	}
}

func TestWebPage(t *testing.T) {
	root, _ := url.Parse("https://proxy.example:8443/zd/?token=secret#frag")
	got := webPage(root, "agent", "tickets", "1/../2?x=y#z")
	if want := "https://proxy.example:8443/zd/agent/tickets/1%2F..%2F2%3Fx=y%23z"; got != want {
		t.Errorf("webPage = %q, want %q", got, want)
	}
	if strings.Contains(got, "secret") {
		t.Errorf("webPage %q carries base_url's query", got)
	}
	if got := webPage(nil, "browse", "SUP-1"); got != "" {
		t.Errorf("no root: %q", got)
	}
	base, _ := url.Parse("http://127.0.0.1:9")
	if got := siteRoot("", ".zendesk.com", base); got != base {
		t.Errorf("siteRoot without a name: %v", got)
	}
	if got := siteRoot("Acme", ".zendesk.com", base).String(); got != "https://acme.zendesk.com" {
		t.Errorf("siteRoot with a name: %v", got)
	}
}

func TestAnswerURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://desk.zoho.com/support/zylker/ShowHomePage.do#Cases/dv/1892000000143237": "https://desk.zoho.com/support/zylker/ShowHomePage.do#Cases/dv/1892000000143237",
		"http://ghe.example/acme/support/issues/3":                                       "http://ghe.example/acme/support/issues/3",
		"javascript:alert(1)":           "",
		"/relative/path":                "",
		"https://user:pw@evil.example/": "",
		"ftp://x/y":                     "",
		"https://x/\x00":                "",
		"":                              "",
	} {
		if got := answerURL(raw); got != want {
			t.Errorf("answerURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestDeskScalars(t *testing.T) {
	answer := []byte(`{"id":"18","ticketNumber":101,"nested":{"webUrl":"no"},"webUrl":"https://d/x","subject":"a b","description":"` + strings.Repeat("x", 100))
	got := deskScalars(answer, "ticketNumber", "webUrl", "subject", "missing")
	want := map[string]string{"ticketNumber": "101", "webUrl": "https://d/x"} // subject has a space; the cut ends the read
	if !maps.Equal(got, want) {
		t.Errorf("deskScalars = %v, want %v", got, want)
	}
	if got := deskScalars([]byte(`[1]`), "id"); len(got) != 0 {
		t.Errorf("not an object: %v", got)
	}
}

func TestFoundObjectLinks(t *testing.T) {
	link := router.Link{"id": "9", "url": "https://x/9"}
	find := func(context.Context) (int, string, router.Link, error) { return 200, "9", link, nil }
	create := func(context.Context, *router.Delivery) (router.Result, error) {
		t.Fatal("created although the search found the object")
		return router.Result{}, nil
	}
	// A later attempt takes what it found as its own, link and all.
	d := &router.Delivery{ID: "d", Attempt: 2}
	res, err := createOrFollowUp(context.Background(), d, find, nil, create)
	if err != nil || res.RemoteID != "9" {
		t.Fatalf("%+v, %v", res, err)
	}
	wantLink(t, "taken as its own", res.Link, link)
	// A first attempt follows up, with what the search found recorded.
	d = &router.Delivery{ID: "d", Attempt: 1, DedupKey: "k"}
	var followed *router.Delivery
	followUp := func(_ context.Context, f *router.Delivery) (router.Result, error) {
		followed = f
		return router.Result{RemoteID: f.RemoteID}, nil
	}
	if _, err := createOrFollowUp(context.Background(), d, find, followUp, create); err != nil {
		t.Fatal(err)
	}
	if followed == nil || followed.RemoteID != "9" || recorded(followed, "url") != "https://x/9" {
		t.Errorf("followed up with %+v", followed)
	}
}
