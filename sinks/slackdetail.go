package sinks

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
)

// slackDetailMax bounds, in code points, what Slack's explanation adds to
// an error: it lands in every attempt's log line, and Slack lists one
// message per fault, of which a bad template can make dozens.
const slackDetailMax = 500

// explain adds Slack's explanation of an ok:false answer to err (the
// answer, or an error wrapping it): a bare "invalid_blocks" leaves a human
// guessing which block, and why. The result wraps err, so that errors.As
// still finds the answer.
func (s *slackSink) explain(err error, answer slack.SlackErrorResponse) error {
	if d := slackDetail(answer, s.red); d != "" {
		return fmt.Errorf("%w: %s", err, d)
	}
	return err
}

// slackDetail returns what Slack said about an ok:false answer besides
// its code, on one line and at most slackDetailMax code points, with red's
// secrets hidden (before the cut, which could leave half a token that red
// no longer recognises); empty when it said nothing more. Slack says it twice over: the "errors" list
// ("must be less than 3001 characters [json-pointer:/blocks/0/text/text]")
// and response_metadata.messages (the same, each behind "[ERROR] "), which
// is read only when the list is empty. slack-go v0.35.0 keeps both in
// SlackErrorResponse (Errors, ResponseMetadata), so the answer need not be
// read twice; TestSlackErrorDetail fails should an upgrade drop them.
func slackDetail(answer slack.SlackErrorResponse, red *redact.Redactor) string {
	var parts []string
	size := 0 // in bytes: past slackDetailMax, the rest would be cut anyway
	add := func(p string) {
		p = red.Text(strings.Join(strings.Fields(p), " ")) // one line for the log
		if p != "" && p != answer.Err && !slices.Contains(parts, p) {
			parts = append(parts, p)
			size += len(p) + len("; ")
		}
	}
	for _, e := range answer.Errors {
		if size > slackDetailMax {
			break
		}
		if e.Message != nil {
			add(*e.Message)
			continue
		}
		// Structured entries (slack-go knows two, from other methods than
		// chat.postMessage) are shown as JSON.
		if b, err := json.Marshal(e); err == nil && string(b) != "null" {
			add(string(b))
		}
	}
	if len(parts) == 0 {
		for _, m := range answer.ResponseMetadata.Messages {
			if size > slackDetailMax {
				break
			}
			add(strings.TrimPrefix(m, "[ERROR] "))
		}
	}
	return runes.Truncate(strings.Join(parts, "; "), slackDetailMax)
}
