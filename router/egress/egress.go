// Package egress is the outbound address guard (SSRF): it keeps hookroute's
// sinks from being pointed at the router's own network — loopback, private
// and link-local addresses, cloud metadata endpoints, and the IPv6 spellings
// that smuggle those in — unless the operator lists them in egress.allow.
//
// The guard judges the address a socket is about to connect to, in
// net.Dialer.Control, after DNS resolution. Checking a URL's host, or
// resolving it once and dialling later, would leave room for DNS rebinding
// (a name that answers a public address to the check and 127.0.0.1 to the
// dial) and for the many spellings of an address that parsers disagree on
// (2130706433, 0x7f000001, 0177.0.0.1, 127.1); at Control time there is
// only the IP the kernel will use.
//
// What is blocked (unless inside an allowed prefix):
//
//	IPv4  0.0.0.0/8 (this network), 10/8, 172.16/12, 192.168/16 (private),
//	      100.64/10 (CGNAT), 127/8 (loopback), 169.254/16 (link-local, cloud
//	      metadata), 192.0.0.0/24 (IETF protocol assignments), 192.0.2/24,
//	      198.51.100/24, 203.0.113/24 (documentation), 192.88.99/24 (6to4
//	      relay anycast, deprecated), 198.18/15 (benchmarking), 224/4
//	      (multicast), 240/4 (reserved) and 255.255.255.255 (broadcast).
//	IPv6  everything outside 2000::/3, the only global unicast space: ::1,
//	      ::, fe80::/10, fec0::/10, fc00::/7, ff00::/8, 100::/64 and the
//	      rest; inside it, 2001:db8::/32 and 3fff::/20 (documentation),
//	      2001:2::/48 (benchmarking), 2001:10::/28 (ORCHID, deprecated) and
//	      5f00::/16 (SRv6 segment ids).
//
// Documentation ranges are blocked: no real webhook endpoint lives there,
// and labs do number internal hosts from them.
//
// IPv6 addresses that embed an IPv4 address are judged by that IPv4 address,
// so that [::ffff:127.0.0.1] is loopback and [2002:808:808::] is 8.8.8.8:
// IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4
// 2002::/16 (bits 16–47) and Teredo 2001::/32 (both the server, bits 32–63,
// and the client, bits 96–127 inverted, must be allowed). The local-use NAT64
// prefix 64:ff9b:1::/48 (RFC 8215) places the IPv4 address where the
// network's own prefix length (48, 56, 64 or 96) says, which the address
// alone does not tell, so every RFC 6052 reading is judged and all must be
// allowed; in practice a local NAT64 network needs an egress.allow entry.
//
// An allow prefix written as IPv4 also allows the same addresses in their
// IPv4-mapped form, and one written IPv4-mapped (::ffff:10.0.0.0/104) is
// taken as the IPv4 prefix it maps. Allow prefixes match the address as it
// is dialled: allowing 10.0.0.0/8 does not allow [2002:a00:1::], which
// reaches 10.0.0.1 only through somebody's 6to4 relay.
//
// Proxies are not used when the guard is on (Transport sets Proxy to nil): a
// proxy dials the destination on our behalf, so the guard would only ever
// see the proxy's address.
package egress

import (
	"net"
	"net/netip"
	"time"
)

// Guard decides which addresses outbound connections may reach. It is safe
// for concurrent use. A nil *Guard behaves as New(nil): nothing private is
// allowed.
type Guard struct {
	allow  []netip.Prefix
	dialer net.Dialer
}

// Dialer settings of DialContext and Transport: long enough for a slow
// handshake across the world, short enough that a blackholed endpoint does
// not hold a worker for the whole delivery timeout.
const (
	dialTimeout = 10 * time.Second
	keepAlive   = 30 * time.Second
)

// New returns a guard that blocks the ranges listed in the package comment
// except those inside allow. Invalid prefixes in allow are ignored (config
// validation refuses them first); host bits are ignored.
func New(allow []netip.Prefix) *Guard {
	g := &Guard{}
	for _, p := range allow {
		if !p.IsValid() {
			continue
		}
		a := p.Addr().WithZone("")
		bits := p.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		g.allow = append(g.allow, netip.PrefixFrom(a, bits).Masked())
	}
	g.dialer = net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive, Control: g.Control}
	return g
}

// defaultGuard serves a nil *Guard.
var defaultGuard = New(nil)

// Allowed reports whether a connection to ip may be made: ip is inside an
// allowed prefix, or in none of the blocked ranges. An IPv6 zone is
// ignored; the zero Addr is not allowed.
func (g *Guard) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("") // Prefix.Contains never matches a zoned address
	if g.allowListed(ip) {
		return true
	}
	return blockReason(ip) == ""
}

// allowListed reports whether ip is inside an allow prefix, an IPv4-mapped
// ip also being inside the IPv4 prefixes that contain its IPv4 form.
func (g *Guard) allowListed(ip netip.Addr) bool {
	if g == nil {
		return false
	}
	v4 := ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) || (ip.Is4In6() && p.Addr().Is4() && p.Contains(v4)) {
			return true
		}
	}
	return false
}

// span is a blocked range and why it is blocked.
type span struct {
	p   netip.Prefix
	why string
}

func spans(list ...string) []span {
	out := make([]span, 0, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		out = append(out, span{netip.MustParsePrefix(list[i]), list[i+1]})
	}
	return out
}

// blocked4 are the IPv4 ranges no sink may reach by default: IANA's
// special-purpose registry (RFC 6890 and successors) without its few
// globally reachable anycast entries, plus multicast.
var blocked4 = spans(
	"0.0.0.0/8", "this network",
	"10.0.0.0/8", "private",
	"100.64.0.0/10", "shared address space (CGNAT)",
	"127.0.0.0/8", "loopback",
	"169.254.0.0/16", "link-local",
	"172.16.0.0/12", "private",
	"192.0.0.0/24", "IETF protocol assignments",
	"192.0.2.0/24", "documentation",
	"192.88.99.0/24", "6to4 relay anycast",
	"192.168.0.0/16", "private",
	"198.18.0.0/15", "benchmarking",
	"198.51.100.0/24", "documentation",
	"203.0.113.0/24", "documentation",
	"224.0.0.0/4", "multicast",
	"255.255.255.255/32", "broadcast",
	"240.0.0.0/4", "reserved",
)

// blocked6 are named IPv6 ranges; everything outside globalUnicast is
// blocked as well, these only give a better reason or carve holes in it.
var blocked6 = spans(
	"::1/128", "loopback",
	"::/128", "unspecified",
	"fe80::/10", "link-local",
	"fec0::/10", "site-local",
	"fc00::/7", "unique-local",
	"ff00::/8", "multicast",
	"100::/64", "discard-only",
	"2001:db8::/32", "documentation",
	"3fff::/20", "documentation",
	"2001:2::/48", "benchmarking",
	"2001:10::/28", "ORCHID",
	"5f00::/16", "SRv6 segment ids",
)

// globalUnicast is the only IPv6 space IANA allocates for global unicast.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// blockReason says why ip is blocked by default, or "" when it is not.
func blockReason(ip netip.Addr) string {
	if ip.Is4() {
		return blockReason4(ip)
	}
	var emb [4]netip.Addr
	if via, n := embedded(ip.As16(), &emb); n > 0 {
		for _, a := range emb[:n] {
			if r := blockReason4(a); r != "" {
				return r + " (" + via + ")"
			}
		}
		return ""
	}
	for _, s := range blocked6 {
		if s.p.Contains(ip) {
			return s.why
		}
	}
	if !globalUnicast.Contains(ip) {
		return "not global unicast"
	}
	return ""
}

func blockReason4(ip netip.Addr) string {
	for _, s := range blocked4 {
		if s.p.Contains(ip) {
			return s.why
		}
	}
	return ""
}

// The prefixes that announce an IPv4 address inside an IPv6 one.
var (
	v4MappedPrefix   = [12]byte{10: 0xff, 11: 0xff}                // ::ffff:0:0/96
	nat64Prefix      = [4]byte{0x00, 0x64, 0xff, 0x9b}             // 64:ff9b::/96 (then 8 zero bytes)
	localNAT64Prefix = [6]byte{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01} // 64:ff9b:1::/48
	sixToFourPrefix  = [2]byte{0x20, 0x02}                         // 2002::/16
	teredoPrefix     = [4]byte{0x20, 0x01, 0x00, 0x00}             // 2001::/32
)

// embedded finds the IPv4 addresses an IPv6 address carries, storing them
// in out; it returns the encoding's name and how many there are (0: none).
// ::1 and :: are left to blocked6, which names them better than their
// IPv4-compatible reading (0.0.0.1, 0.0.0.0) would.
func embedded(b [16]byte, out *[4]netip.Addr) (string, int) {
	v4 := func(i, j, k, l int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]}) }
	switch {
	case [12]byte(b[:12]) == v4MappedPrefix:
		out[0] = v4(12, 13, 14, 15)
		return "IPv4-mapped", 1
	case [12]byte(b[:12]) == [12]byte{} && [3]byte(b[12:15]) != [3]byte{}:
		// ::/96 minus ::0.0.0.x, which holds ::1 and ::; 0.0.0.x is blocked
		// as "this network" anyway.
		out[0] = v4(12, 13, 14, 15)
		return "IPv4-compatible", 1
	case [4]byte(b[:4]) == nat64Prefix && [8]byte(b[4:12]) == [8]byte{}:
		out[0] = v4(12, 13, 14, 15)
		return "NAT64", 1
	case [6]byte(b[:6]) == localNAT64Prefix:
		// RFC 6052 §2.2: with a /48, /56 or /64 prefix the address skips
		// bits 64–71 (octet 8); with a /96 it is the last 32 bits.
		out[0] = v4(6, 7, 9, 10)
		out[1] = v4(7, 9, 10, 11)
		out[2] = v4(9, 10, 11, 12)
		out[3] = v4(12, 13, 14, 15)
		return "local-use NAT64", 4
	case [2]byte(b[:2]) == sixToFourPrefix:
		out[0] = v4(2, 3, 4, 5)
		return "6to4", 1
	case [4]byte(b[:4]) == teredoPrefix:
		out[0] = v4(4, 5, 6, 7) // the Teredo server
		out[1] = netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return "Teredo", 2
	}
	return "", 0
}
