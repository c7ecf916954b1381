package egress

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
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
	msgNumeric  = "check URL: the host is an ambiguous IPv4 spelling (a single number, hex, octal, leading zeros or fewer than four parts); write the address as four decimal numbers, such as 192.0.2.1"
)

// CheckURL parses raw as a sink endpoint for config validation: http or
// https, with a host, without userinfo, and with a port, if any, between 1
// and 65535. A host made of numbers must be an IPv4 address in four
// decimal parts (see ambiguousIPv4). Its errors never quote raw. Whether the host may be reached is decided
// later, at dial time, by a Guard.
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
	// url.Parse has already checked a bracketed host as an IPv6 address.
	if host := u.Hostname(); !strings.Contains(host, ":") && ambiguousIPv4(host) {
		return nil, errors.New(msgNumeric)
	}
	return u, nil
}

// ambiguousIPv4 reports whether host ends in a numeric label, which makes
// it an IPv4 address to a browser (the WHATWG URL standard) and to
// inet_aton (getaddrinfo, curl), but is not the canonical dotted decimal
// that Go's dialer takes as one. 2130706433, 0x7f000001, 0177.0.0.1,
// 0x7f.0.0.1, 127.1 and 127.0.1 are all 127.0.0.1 to those readers; Go's
// resolver looks them up as names, and the cgo one by getaddrinfo again as
// numbers. The guard still judges whatever address is dialled, but a
// config whose URL means one host to the operator's curl and maybe another
// to the router is refused rather than guessed at. No top-level domain is
// numeric, so no real name is lost.
func ambiguousIPv4(host string) bool {
	trimmed := strings.TrimSuffix(host, ".")
	last := trimmed[strings.LastIndexByte(trimmed, '.')+1:]
	if !numericLabel(last) {
		return false
	}
	a, err := netip.ParseAddr(host) // refuses leading zeros, hex and short forms
	return err != nil || !a.Is4()
}

// numericLabel reports whether s is a decimal or 0x-hex number, the label
// forms that make a host an IPv4 address (an octal label is decimal digits
// behind a 0).
func numericLabel(s string) bool {
	digits := "0123456789"
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, digits = s[2:], "0123456789abcdefABCDEF"
		if s == "" {
			return true // "0x" alone is 0 to a browser
		}
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(digits, s[i]) < 0 {
			return false
		}
	}
	return true
}
