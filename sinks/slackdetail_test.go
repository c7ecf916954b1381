package sinks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/hookroute/hookroute/router"
)

// slackAnswering is a chat.postMessage that answers every post with body,
// as Slack does: HTTP 200 and JSON, whatever went wrong.
func slackAnswering(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/chat.postMessage" || r.Header.Get("Authorization") != "Bearer "+testToken {
			writeJSON(w, `{"ok":false,"error":"not_authed"}`)
			return
		}
		writeJSON(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSlackErrorDetail posts through the sink as configured (newSlackSink's
// slack.Client over bearerClient) to a server answering as Slack does, and
// reads the error the attempt log would keep.
func TestSlackErrorDetail(t *testing.T) {
	long := strings.Repeat("must be less than 3001 characters [json-pointer:/blocks/0/text/text] ", 3)
	tests := []struct {
		name, body, want string
		permanent        bool
	}{
		{
			"errors and messages",
			`{"ok":false,"error":"invalid_blocks","errors":["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"],"response_metadata":{"messages":["[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]}}`,
			"slack: post message: invalid_blocks: must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
			true,
		},
		{
			// Proves slack-go keeps "errors": the messages say otherwise.
			"errors first",
			`{"ok":false,"error":"invalid_blocks","errors":["from errors"],"response_metadata":{"messages":["[ERROR] from messages"]}}`,
			"slack: post message: invalid_blocks: from errors",
			true,
		},
		{
			"messages only",
			`{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 151 characters [json-pointer:/blocks/1/text/text]","[ERROR] no more than 50 items allowed [json-pointer:/blocks]"]}}`,
			"slack: post message: invalid_blocks: must be less than 151 characters [json-pointer:/blocks/1/text/text]; no more than 50 items allowed [json-pointer:/blocks]",
			true,
		},
		{
			"several errors, on one line, repeats once",
			`{"ok":false,"error":"invalid_blocks","errors":["first\nproblem","second","second","invalid_blocks"]}`,
			"slack: post message: invalid_blocks: first problem; second",
			true,
		},
		{
			"no detail",
			`{"ok":false,"error":"channel_not_found"}`,
			"slack: post message: channel_not_found",
			true,
		},
		{
			"empty lists",
			`{"ok":false,"error":"channel_not_found","errors":[],"response_metadata":{"messages":[],"warnings":["missing_charset"]}}`,
			"slack: post message: channel_not_found",
			true,
		},
		{
			"retryable keeps its detail and stays retryable",
			`{"ok":false,"error":"internal_error","errors":["try again"]}`,
			"slack: post message: internal_error: try again",
			false,
		},
		{
			"scope",
			`{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read","errors":["the token lacks chat:write"]}`,
			"slack: post message: missing_scope: the token lacks chat:write (needs scope chat:write, token has channels:read)",
			true,
		},
		{
			"the token is never shown",
			`{"ok":false,"error":"invalid_auth","errors":["token ` + testToken + ` is revoked"]}`,
			"slack: post message: invalid_auth: token <redacted> is revoked",
			true,
		},
		{
			"the token is never shown, even cut",
			`{"ok":false,"error":"invalid_auth","errors":["` + strings.Repeat("x", slackDetailMax-10) + ` ` + testToken + `"]}`,
			"slack: post message: invalid_auth: " + strings.Repeat("x", slackDetailMax-10) + " <redacte…",
			true,
		},
		{
			"bounded",
			`{"ok":false,"error":"invalid_blocks","errors":["` + strings.Repeat("a", 2000) + `","` + long + `"]}`,
			"slack: post message: invalid_blocks: " + strings.Repeat("a", slackDetailMax-1) + "…",
			true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slackAnswering(t, tt.body)
			s := mustBuild(t, "slack", "token: ${SLACK_BOT_TOKEN}\nchannel: C1\napi_url: "+srv.URL+"/api/", tokenEnv)
			res, err := s.Deliver(context.Background(), delivery(map[string]string{"text": "hi"}))
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if router.IsPermanent(err) != tt.permanent || res.StatusCode != http.StatusOK {
				t.Errorf("permanent %v, status %d; want %v, 200", router.IsPermanent(err), res.StatusCode, tt.permanent)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Error("the token is in the error")
			}
		})
	}
}

// TestSlackDetailBound: the detail stays within its bound however many
// faults Slack lists, and only the errors list is read when it has any.
func TestSlackDetailBound(t *testing.T) {
	msg := "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
	answer := slack.SlackErrorResponse{Err: "invalid_blocks"}
	for i := range 1000 {
		m := fmt.Sprintf("%s é%d", msg, i)
		answer.Errors = append(answer.Errors, slack.SlackResponseErrors{Message: &m})
		answer.ResponseMetadata.Messages = append(answer.ResponseMetadata.Messages, "[ERROR] other")
	}
	d := slackDetail(answer, nil)
	if n := utf8.RuneCountInString(d); n != slackDetailMax || !strings.HasPrefix(d, msg+" é0; "+msg+" é1; ") || strings.Contains(d, "other") {
		t.Errorf("%d code points: %.100s…", n, d)
	}
}
