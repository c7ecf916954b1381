package egress

import (
	"errors"
	"net/url"
	"strconv"
)

// Why CheckURL refuses a URL. The messages are fixed: a sink URL may be a
// credential (a Slack webhook URL is one), so no part of it is quoted.
const (
	msgEmpty    = "check URL: is empty"
	msgInvalid  = "check URL: is not a valid URL"
	msgScheme   = "check URL: must be an http or https URL"
	msgUserinfo = "check URL: must not carry a user name or password (use headers or a token instead)"
	msgNoHost   = "check URL: has no host"
	msgPort     = "check URL: port must be between 1 and 65535"
)

// CheckURL parses raw as a sink endpoint for config validation: http or
// https, with a host, without userinfo, and with a port, if any, between 1
// and 65535. Its errors never quote raw. Whether the host may be reached
// is decided later, at dial time, by a Guard.
func CheckURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New(msgEmpty)
	}
	u, err := url.Parse(raw) // not wrapped: a *url.Error quotes the URL
	if err != nil {
		return nil, errors.New(msgInvalid)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New(msgScheme)
	}
	if u.User != nil {
		return nil, errors.New(msgUserinfo)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, errors.New(msgNoHost)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, errors.New(msgPort)
		}
	}
	return u, nil
}
