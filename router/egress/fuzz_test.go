package egress

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets compare the guard with an oracle written separately
// from it: the blocked ranges as masks over integers, the IPv4-in-IPv6
// encodings as shifts, so that a slip in one is unlikely to be repeated in
// the other.

// oracle4 are the blocked IPv4 ranges as (network, prefix length).
var oracle4 = []struct {
	net  uint32
	bits int
}{
	{0x00000000, 8}, {0x0a000000, 8}, {0x64400000, 10}, {0x7f000000, 8},
	{0xa9fe0000, 16}, {0xac100000, 12}, {0xc0000000, 24}, {0xc0000200, 24},
	{0xc0586300, 24}, {0xc0a80000, 16}, {0xc6120000, 15}, {0xc6336400, 24},
	{0xcb007100, 24}, {0xe0000000, 4}, {0xf0000000, 4},
}

func oracleBlocked4(x uint32) bool {
	for _, r := range oracle4 {
		if x>>(32-r.bits) == r.net>>(32-r.bits) {
			return true
		}
	}
	return false
}

// oracle6 are the named blocked IPv6 ranges inside 2000::/3 (the rest of
// the space is blocked whole), as the top 64 bits and a prefix length.
var oracle6 = []struct {
	hi   uint64
	bits int
}{
	{0x20010db800000000, 32}, {0x3fff000000000000, 20}, {0x2001000200000000, 48},
	{0x2001001000000000, 28}, {0x5f00000000000000, 16},
}

// oracleBlocked says whether ip should be blocked by a guard with no
// allow list.
func oracleBlocked(ip netip.Addr) bool {
	if ip.Is4() {
		return oracleBlocked4(binary.BigEndian.Uint32(ip.AsSlice()))
	}
	b := ip.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	switch {
	case hi == 0 && lo>>32 == 0xffff: // IPv4-mapped
		return oracleBlocked4(uint32(lo))
	case hi == 0 && lo>>32 == 0: // IPv4-compatible, ::, ::1
		return oracleBlocked4(uint32(lo))
	case hi == 0x0064ff9b00000000 && lo>>32 == 0: // NAT64
		return oracleBlocked4(uint32(lo))
	case hi>>16 == 0x0064ff9b0001: // local-use NAT64 at /48, /56, /64, /96
		return oracleBlocked4(uint32(hi&0xffff)<<16|uint32(lo>>40)&0xffff) ||
			oracleBlocked4(uint32(hi&0xff)<<24|uint32(lo>>32)&0xffffff) ||
			oracleBlocked4(uint32(lo>>24)) ||
			oracleBlocked4(uint32(lo))
	case hi>>48 == 0x2002: // 6to4
		return oracleBlocked4(uint32(hi >> 16))
	case hi>>32 == 0x20010000: // Teredo
		return oracleBlocked4(uint32(hi)) || oracleBlocked4(^uint32(lo))
	}
	if hi>>61 != 1 { // outside 2000::/3
		return true
	}
	for _, r := range oracle6 {
		if hi>>(64-r.bits) == r.hi>>(64-r.bits) {
			return true
		}
	}
	return false
}

// hostSeeds are spellings of hosts, good and bad, for the corpus.
var hostSeeds = []string{
	"2130706433", "0x7f000001", "0177.0.0.1", "127.1", "127.0.0.1.", "fe80::1%lo",
	"[fe80::1%25lo]", "::ffff:7f00:1", "0:0:0:0:0:ffff:127.0.0.1", "localhost", "",
	"[", "]:", "::", "1.2.3.4:80", "[::1]:80", "64:ff9b:1:a00:1::", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
	"::ffff:0:a00:1", "01.02.03.04", "1.2.3.4%eth0", "fe80::1%", "%",
}

func FuzzGuard(f *testing.F) {
	for _, c := range spellings {
		f.Add(strings.Trim(c.addr, "[]"))
		f.Add(c.addr)
	}
	for _, s := range hostSeeds {
		f.Add(s)
	}
	open := New(nil)
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	some := New(allow)
	inAllow := func(ip netip.Addr) bool {
		ip = ip.WithZone("")
		return allow[0].Contains(ip.Unmap()) || allow[1].Contains(ip)
	}
	f.Fuzz(func(t *testing.T, host string) {
		// Whatever the dialer passes, Control answers without panicking
		// and fails closed.
		_ = open.Control("tcp", host, nil)
		addr := net.JoinHostPort(host, "443")
		err := open.Control("tcp", addr, nil)
		if ap, perr := netip.ParseAddrPort(addr); perr != nil {
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("Control(%q) = %v for an unparsable address", addr, err)
			}
		} else if blocked := oracleBlocked(ap.Addr().WithZone("")); blocked != errors.Is(err, ErrBlocked) || !blocked && err != nil {
			t.Fatalf("Control(%q) = %v, oracle says blocked=%v", addr, err, blocked)
		}

		var addrs []netip.Addr
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			addrs = append(addrs, a)
		}
		if ip := net.ParseIP(host); ip != nil {
			a, _ := netip.AddrFromSlice(ip)
			addrs = append(addrs, a)
		}
		for _, a := range addrs {
			blocked := oracleBlocked(a.WithZone(""))
			if open.Allowed(a) == blocked {
				t.Fatalf("Allowed(%s) = %v, oracle says blocked=%v", a, !blocked, blocked)
			}
			if want := !blocked || inAllow(a); some.Allowed(a) != want {
				t.Fatalf("with allow %v: Allowed(%s) = %v, want %v", allow, a, !want, want)
			}
		}
	})
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.slack.com/services/T/B/X", "http://example.com:8080/?q=1", "file:///etc/passwd",
		"http://u:p@h/", "http://h:0/", "http://h:65536/", "http://[::1]:80/", "http://[fe80::1%25lo]/",
		"http:opaque", "http://:80", "HTTP://H/", "http://h:/", "gopher://h:70/_x", "",
		"http://127.1/", "http://0x7f000001/", "http://0177.0.0.1/", "http://1.2.3.4./",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := CheckURL(raw)
		if err != nil {
			if !checkURLMessages[err.Error()] {
				t.Fatalf("CheckURL(%q): unexpected error text %q", raw, err)
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("CheckURL(%q) accepted scheme %q", raw, u.Scheme)
		}
		if u.User != nil {
			t.Fatalf("CheckURL(%q) accepted userinfo", raw)
		}
		if u.Hostname() == "" || u.Opaque != "" {
			t.Fatalf("CheckURL(%q) accepted a URL without a host", raw)
		}
		if h := u.Hostname(); !strings.Contains(h, ":") && numericLabel(h[strings.LastIndexByte(strings.TrimSuffix(h, "."), '.')+1:]) {
			// An accepted numeric host is an address the dialer reads as
			// the operator does: canonical dotted decimal.
			if a, err := netip.ParseAddr(h); err != nil || a.String() != h {
				t.Fatalf("CheckURL(%q) accepted the ambiguous host %q", raw, h)
			}
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("CheckURL(%q) accepted port %q", raw, p)
			}
		}
	})
}
