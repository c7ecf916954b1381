//go:debug netdns=cgo

// The cgo resolver (getaddrinfo) resolves inet_aton spellings such as
// 2130706433, 0x7f000001, 0177.0.0.1 and 127.1 to 127.0.0.1, so under it the
// integration test sees the guard block them at dial time;
// TestTransportGoResolver re-runs that test under the pure Go resolver,
// which refuses to resolve them at all. Without cgo both runs use Go's.

package egress

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// spellings are addresses as they reach the dialer after Go's URL parsing
// and resolution: bracketed IPv6, IPv4-mapped, zone ids.
var spellings = []struct {
	addr    string
	blocked bool
}{
	// loopback
	{"127.0.0.1", true},
	{"127.1.2.3", true},
	{"127.255.255.255", true},
	{"[::1]", true},
	{"[::ffff:127.0.0.1]", true},
	{"[::ffff:7f00:1]", true},
	{"[::127.0.0.1]", true},
	{"[0:0:0:0:0:0:0:1]", true},
	// unspecified: connecting to it reaches the local host
	{"0.0.0.0", true},
	{"0.1.2.3", true},
	{"[::]", true},
	{"[::ffff:0.0.0.0]", true},
	// private
	{"10.0.0.1", true},
	{"10.255.255.255", true},
	{"172.16.0.1", true},
	{"172.31.255.255", true},
	{"192.168.1.1", true},
	{"[::ffff:10.0.0.1]", true},
	{"[::ffff:c0a8:101]", true},
	// link-local and cloud metadata
	{"169.254.169.254", true},
	{"[fe80::1]", true},
	{"[fe80::1%lo]", true},
	{"[febf:ffff::1]", true},
	{"[fd00:ec2::254]", true},
	{"[::ffff:169.254.169.254]", true},
	{"[::a9fe:a9fe]", true},
	// unique-local, site-local
	{"[fc00::1]", true},
	{"[fdff:ffff::1]", true},
	{"[fec0::1]", true},
	// CGNAT
	{"100.64.0.1", true},
	{"100.127.255.255", true},
	// NAT64 (well-known and local-use)
	{"[64:ff9b::a9fe:a9fe]", true},
	{"[64:ff9b::7f00:1]", true},
	{"[64:ff9b::10.1.2.3]", true},
	{"[64:ff9b:1::a00:1]", true},
	{"[64:ff9b:1:a00:1::]", true},
	// 6to4
	{"[2002:a9fe:a9fe::]", true},
	{"[2002:7f00:1::]", true},
	{"[2002:c0a8:101:1::1]", true},
	// Teredo: server 8.8.8.8, client 127.0.0.1 (inverted: 80ff:fffe)
	{"[2001:0:808:808::80ff:fffe]", true},
	// Teredo: server 10.0.0.1, client 8.8.8.8 (inverted: f7f7:f7f7)
	{"[2001:0:a00:1:0:0:f7f7:f7f7]", true},
	// multicast, broadcast, reserved
	{"224.0.0.1", true},
	{"239.255.255.250", true},
	{"255.255.255.255", true},
	{"240.0.0.1", true},
	{"[ff02::1]", true},
	{"[ff0e::1]", true},
	// IETF, documentation, benchmarking, other special IPv6
	{"192.0.0.8", true},
	{"192.0.2.1", true},
	{"198.51.100.7", true},
	{"203.0.113.9", true},
	{"192.88.99.1", true},
	{"198.18.0.1", true},
	{"198.19.255.255", true},
	{"[2001:db8::1]", true},
	{"[3fff::1]", true},
	{"[2001:2::1]", true},
	{"[100::1]", true},
	{"[5f00::1]", true},
	{"[4000::1]", true},
	{"[::ffff:0:a00:1]", true}, // SIIT "IPv4-translated": outside 2000::/3

	// public
	{"8.8.8.8", false},
	{"1.1.1.1", false},
	{"9.9.9.9", false},
	{"11.0.0.1", false},
	{"100.128.0.1", false},
	{"169.253.255.255", false},
	{"172.32.0.1", false},
	{"192.0.1.1", false},
	{"198.20.0.1", false},
	{"223.255.255.255", false},
	{"[2606:4700:4700::1111]", false},
	{"[2a00:1450:4001:81b::200e]", false},
	{"[2002:808:808::]", false},
	{"[2002:808:808:1::1]", false},
	{"[::ffff:8.8.8.8]", false},
	{"[64:ff9b::808:808]", false},
	{"[64:ff9b:1:808:8:808:808:808]", false}, // every RFC 6052 reading is 8.8.8.8
	{"[2001:0:808:808::f7f7:f7f7]", false},   // Teredo, server and client 8.8.8.8
}

func TestAllowedSpellings(t *testing.T) {
	g := New(nil)
	for _, c := range spellings {
		host := strings.Trim(c.addr, "[]")
		a, err := netip.ParseAddr(host)
		if err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		if got := g.Allowed(a); got == c.blocked {
			t.Errorf("Allowed(%s) = %v, want %v (reason %q)", c.addr, got, !c.blocked, blockReason(a.WithZone("")))
		}
		// net.ParseIP gives IPv4 as 16 bytes: the IPv4-mapped form.
		if ip := net.ParseIP(host); ip != nil {
			a, _ := netip.AddrFromSlice(ip)
			if got := g.Allowed(a); got == c.blocked {
				t.Errorf("Allowed(net.ParseIP(%s) = %s) = %v, want %v", c.addr, a, got, !c.blocked)
			}
		}
		err = g.Control("tcp", net.JoinHostPort(host, "443"), nil)
		if c.blocked != errors.Is(err, ErrBlocked) {
			t.Errorf("Control(%s) = %v, want blocked %v", c.addr, err, c.blocked)
		}
		var be *BlockedError
		if c.blocked && (!errors.As(err, &be) || be.Reason == "" ||
			!strings.Contains(err.Error(), "is not allowed (private, loopback or link-local); allow it with egress.allow")) {
			t.Errorf("Control(%s) error %q (%#v): want a *BlockedError with a reason", c.addr, err, be)
		}
	}
}

func TestAllowList(t *testing.T) {
	g := New([]netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::ffff:10.0.0.0/104"), // taken as 10.0.0.0/8
		netip.MustParsePrefix("192.168.1.77/24"),     // host bits ignored
		{},                                           // invalid: ignored
	})
	for addr, want := range map[string]bool{
		"127.0.0.1":          true,
		"::ffff:127.0.0.1":   true, // an IPv4 prefix allows the IPv4-mapped form
		"127.0.0.2":          false,
		"::1":                false,
		"2002:7f00:1::":      false, // allow lists match the dialled address
		"64:ff9b::7f00:1":    false,
		"fd00:ec2::254":      true,
		"fe80::1":            false,
		"10.9.8.7":           true,
		"::ffff:10.9.8.7":    true,
		"192.168.1.1":        true,
		"192.168.2.1":        false,
		"169.254.169.254":    false,
		"8.8.8.8":            true, // public stays allowed
		"fd00::1%eth0":       true,
		"::ffff:169.254.1.1": false,
	} {
		if got := g.Allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if New(nil).Allowed(netip.Addr{}) || g.Allowed(netip.Addr{}) {
		t.Error("the zero Addr is allowed")
	}
	all := New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	for _, a := range []string{"127.0.0.1", "::1", "::ffff:10.0.0.1", "ff02::1"} {
		if !all.Allowed(netip.MustParseAddr(a)) {
			t.Errorf("allow-all guard blocks %s", a)
		}
	}
	var nilGuard *Guard
	if nilGuard.Allowed(netip.MustParseAddr("127.0.0.1")) || !nilGuard.Allowed(netip.MustParseAddr("8.8.8.8")) {
		t.Error("a nil *Guard does not behave as New(nil)")
	}
}

// blockedSamples are the IPv4 blocked ranges, written out independently of
// blocked4.
var blockedSamples = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"255.255.255.255/32",
}

// encodings spell an IPv4 address as the dialer may see it; r fills the
// bits an encoding leaves free.
var encodings = map[string]func(a [4]byte, r *rand.Rand) netip.Addr{
	"IPv4": func(a [4]byte, _ *rand.Rand) netip.Addr { return netip.AddrFrom4(a) },
	"IPv4-mapped": func(a [4]byte, _ *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]})
	},
	"IPv4-compatible": func(a [4]byte, _ *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{12: a[0], 13: a[1], 14: a[2], 15: a[3]})
	},
	"NAT64": func(a [4]byte, _ *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 12: a[0], 13: a[1], 14: a[2], 15: a[3]})
	},
	"local NAT64/48": func(a [4]byte, _ *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 5: 1, 6: a[0], 7: a[1], 9: a[2], 10: a[3]})
	},
	"local NAT64/56": func(a [4]byte, r *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 5: 1, 6: byte(r.Uint32()), 7: a[0], 9: a[1], 10: a[2], 11: a[3]})
	},
	"local NAT64/64": func(a [4]byte, r *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 5: 1, 6: byte(r.Uint32()), 7: byte(r.Uint32()), 9: a[0], 10: a[1], 11: a[2], 12: a[3]})
	},
	"local NAT64/96": func(a [4]byte, r *rand.Rand) netip.Addr {
		return netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 5: 1, 6: byte(r.Uint32()), 11: byte(r.Uint32()), 12: a[0], 13: a[1], 14: a[2], 15: a[3]})
	},
	"6to4": func(a [4]byte, r *rand.Rand) netip.Addr {
		b := [16]byte{0: 0x20, 1: 0x02, 2: a[0], 3: a[1], 4: a[2], 5: a[3]}
		for i := 6; i < 16; i++ {
			b[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(b)
	},
	"Teredo server": func(a [4]byte, r *rand.Rand) netip.Addr {
		b := [16]byte{0: 0x20, 1: 0x01, 4: a[0], 5: a[1], 6: a[2], 7: a[3], 12: ^byte(8), 13: ^byte(8), 14: ^byte(8), 15: ^byte(8)}
		for i := 8; i < 12; i++ {
			b[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(b)
	},
	"Teredo client": func(a [4]byte, r *rand.Rand) netip.Addr {
		b := [16]byte{0: 0x20, 1: 0x01, 4: 8, 5: 8, 6: 8, 7: 8, 12: ^a[0], 13: ^a[1], 14: ^a[2], 15: ^a[3]}
		for i := 8; i < 12; i++ {
			b[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(b)
	},
}

// TestEverySpelling checks the first, last and random addresses of every
// blocked IPv4 range in every encoding, and public addresses likewise.
func TestEverySpelling(t *testing.T) {
	g := New(nil)
	r := rand.New(rand.NewPCG(7, 7))
	check := func(v4 [4]byte, blocked bool) {
		for name, enc := range encodings {
			a := enc(v4, r)
			if !blocked && strings.HasPrefix(name, "local NAT64") {
				continue // other readings of the address are blocked (see embedded)
			}
			if g.Allowed(a) == blocked {
				t.Errorf("%s as %s (%s): allowed %v, want %v", netip.AddrFrom4(v4), name, a, !blocked, blocked)
			}
			if err := g.Control("tcp6", netip.AddrPortFrom(a, 443).String(), nil); blocked != errors.Is(err, ErrBlocked) {
				t.Errorf("%s as %s (%s): Control = %v", netip.AddrFrom4(v4), name, a, err)
			}
		}
	}
	for _, s := range blockedSamples {
		p := netip.MustParsePrefix(s)
		base := p.Addr().As4()
		hostBits := 32 - p.Bits()
		first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		samples := []uint32{first, first | (1<<hostBits - 1)}
		for range 20 {
			samples = append(samples, first|(r.Uint32()&(1<<hostBits-1)))
		}
		for _, x := range samples {
			check([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}, true)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "9.9.9.9", "23.192.0.1", "151.101.1.69"} {
		check(netip.MustParseAddr(s).As4(), false)
	}
}

func TestControl(t *testing.T) {
	g := New(nil)
	for _, c := range []struct{ network, address string }{
		{"unix", "/run/docker.sock"},
		{"ip4:icmp", "127.0.0.1"},
		{"tcp", "localhost:80"}, // never a name at Control time; refuse if so
		{"tcp", "127.0.0.1"},
		{"tcp", ""},
		{"tcp", "[::1]:80"},
		{"tcp4", "127.0.0.1:80"},
		{"udp", "169.254.169.254:53"},
	} {
		if err := g.Control(c.network, c.address, nil); !errors.Is(err, ErrBlocked) {
			t.Errorf("Control(%q, %q) = %v, want ErrBlocked", c.network, c.address, err)
		}
	}
	for _, c := range []struct{ network, address string }{
		{"tcp", "8.8.8.8:443"},
		{"tcp4", "1.1.1.1:80"},
		{"tcp6", "[2606:4700:4700::1111]:443"},
		{"udp", "9.9.9.9:53"},
	} {
		if err := g.Control(c.network, c.address, nil); err != nil {
			t.Errorf("Control(%q, %q) = %v, want nil", c.network, c.address, err)
		}
	}
	err := g.Control("tcp", "[2002:7f00:1::]:8443", nil)
	if want := "destination [2002:7f00:1::]:8443 is not allowed (private, loopback or link-local); allow it with egress.allow"; err == nil || err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	var be *BlockedError
	if !errors.As(err, &be) || be.Reason != "loopback (6to4)" || be.Addr != netip.MustParseAddrPort("[2002:7f00:1::]:8443") {
		t.Errorf("BlockedError = %#v", be)
	}
	var nilGuard *Guard
	if _, err := nilGuard.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, ErrBlocked) {
		t.Errorf("nil guard dial = %v, want ErrBlocked", err)
	}
}

func TestTransport(t *testing.T) {
	g := New(nil)
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialTLSContext:      func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("bypass") },
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true,
	}
	tr := g.Transport(base)
	//lint:ignore SA1019 checked to be cleared
	if tr == base || tr.Proxy != nil || tr.DialTLSContext != nil || tr.DialTLS != nil || tr.DialContext == nil {
		t.Errorf("Transport did not clone, drop the proxy and the TLS dialer, or set DialContext: %+v", tr)
	}
	if tr.MaxIdleConnsPerHost != 64 || !tr.ForceAttemptHTTP2 {
		t.Error("Transport lost base's settings")
	}
	if base.Proxy == nil || base.DialTLSContext == nil || base.DialContext != nil {
		t.Error("Transport changed base")
	}
	if def := g.Transport(nil); def.Proxy != nil || def.DialContext == nil {
		t.Error("Transport(nil) is not guarded")
	}
	if _, err := tr.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, ErrBlocked) {
		t.Errorf("dial 127.0.0.1 = %v, want ErrBlocked", err)
	}
}

// countingListener counts the connections it accepts: a canary that no
// blocked request may reach.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// canary serves "canary" on a listener at addr, counting accepts.
func canary(t *testing.T, addr string) (port string, n *atomic.Int64, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	n = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "canary")
	}))
	srv.Listener.Close()
	srv.Listener = countingListener{ln, n}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, n, nil
}

func client(t *testing.T, g *Guard) *http.Client {
	tr := g.Transport(nil)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TestTransportBlocksLoopback sends requests through a real http.Client to
// a canary on loopback in every spelling; none may connect.
func TestTransportBlocksLoopback(t *testing.T) {
	t.Logf("GODEBUG=%q", os.Getenv("GODEBUG"))
	port, n4, err := canary(t, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port6, n6, err6 := canary(t, "[::1]:0")
	if err6 != nil {
		t.Logf("no IPv6 loopback (%v): skipping the [::1] rows", err6)
	}
	const path = "/services/T000/B000/SECRETPATH?token=SECRETQUERY"
	rows := []struct {
		url string
		// literal: Go dials it without asking a resolver, so only the
		// guard can refuse it.
		literal bool
		v6      bool
	}{
		{"http://127.0.0.1:" + port + path, true, false},
		{"http://localhost:" + port + path, true, false},
		{"http://[::1]:" + port6 + path, true, true},
		{"http://[::]:" + port6 + path, true, true},
		{"http://0.0.0.0:" + port + path, true, false},
		{"http://2130706433:" + port + path, false, false},
		{"http://0x7f000001:" + port + path, false, false},
		{"http://0177.0.0.1:" + port + path, false, false},
		{"http://127.1:" + port + path, false, false},
		{"http://127.0.0.1.:" + port + path, false, false},
		{"http://[::ffff:127.0.0.1]:" + port + path, true, false},
		{"http://[::ffff:7f00:1]:" + port + path, true, false},
		{"https://127.0.0.1:" + port + path, true, false},
	}
	c := client(t, New(nil))
	for _, r := range rows {
		if r.v6 && err6 != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url, strings.NewReader("{}"))
		resp, err := c.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: request succeeded (status %d)", r.url, resp.StatusCode)
			continue
		}
		var be *BlockedError
		var dnsErr *net.DNSError
		var ne net.Error
		switch {
		case errors.As(err, &be):
			if strings.Contains(be.Error(), "SECRET") {
				t.Errorf("%s: the guard's error quotes the URL: %q", r.url, be.Error())
			}
			t.Logf("%s: blocked by the guard: %s", req.URL.Host, be.Error())
		case r.literal:
			t.Errorf("%s: %v, want ErrBlocked", r.url, err)
		case errors.As(err, &dnsErr):
			t.Logf("%s: refused by the resolver: %v", req.URL.Host, dnsErr)
		case errors.As(err, &ne) && ne.Timeout():
			t.Logf("%s: timed out resolving: %v", req.URL.Host, ne)
		default:
			t.Errorf("%s: %v, want ErrBlocked or a resolver failure", r.url, err)
		}
	}
	if got := n4.Load(); got != 0 {
		t.Fatalf("the 127.0.0.1 canary accepted %d connections", got)
	}
	if err6 == nil && n6.Load() != 0 {
		t.Fatalf("the ::1 canary accepted %d connections", n6.Load())
	}

	// Allowed, the same destination opens: a canary that works, and since
	// its accept loop is serial, a connection that slipped through above
	// would have been counted before this one.
	c = client(t, New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}))
	get := func(url string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("allowed %s: %v", url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "canary" {
			t.Fatalf("allowed %s: body %q", url, body)
		}
	}
	get("http://127.0.0.1:" + port + "/")
	if got := n4.Load(); got != 1 {
		t.Fatalf("the 127.0.0.1 canary accepted %d connections, want 1", got)
	}
	c.CloseIdleConnections()
	get("http://[::ffff:127.0.0.1]:" + port + "/") // an IPv4 allow entry covers its mapped form
	if got := n4.Load(); got != 2 {
		t.Fatalf("the 127.0.0.1 canary accepted %d connections, want 2", got)
	}
	if err6 == nil {
		get("http://[::1]:" + port6 + "/")
		if got := n6.Load(); got != 1 {
			t.Fatalf("the ::1 canary accepted %d connections, want 1", got)
		}
	}
	// 127.0.0.2 is not in the allow list.
	if resp, err := c.Get("http://127.0.0.2:" + port + "/"); !errors.Is(err, ErrBlocked) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("127.0.0.2 with 127.0.0.1/32 allowed: %v, want ErrBlocked", err)
	}
}

// TestTransportGoResolver re-runs TestTransportBlocksLoopback in a child
// process using the pure Go resolver.
func TestTransportGoResolver(t *testing.T) {
	if os.Getenv("EGRESS_TEST_CHILD") != "" {
		t.Skip("in the child already")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTransportBlocksLoopback$", "-test.v", "-test.count=1")
	env := []string{"EGRESS_TEST_CHILD=1"}
	godebug := "netdns=go"
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v + "," + godebug // the last setting wins
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "GODEBUG="+godebug)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTransportBlocksLoopback") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// checkURLMessages are every error CheckURL may return.
var checkURLMessages = map[string]bool{
	msgEmpty: true, msgInvalid: true, msgScheme: true, msgUserinfo: true, msgNoHost: true, msgPort: true,
	msgNumeric: true,
}

func TestCheckURL(t *testing.T) {
	for _, raw := range []string{
		"https://hooks.slack.com/services/T000/B000/XXXX",
		"http://example.com:8080/x?token=y#frag",
		"HTTPS://Example.COM/",
		"http://[::1]:80/",
		"http://127.0.0.1/", // reachability is the guard's business, at dial time
		"http://example.com:65535",
		"http://example.com:/", // empty port: the scheme's default
		"http://192.0.2.1:8080/",
		"http://0.0.0.0/",
		"http://[fe80::1%25lo]/",
		"http://[::ffff:127.0.0.1]/",
		"http://1e100.net/",    // digits, but not a number
		"http://123.example/",  // a numeric label that is not the last
		"http://0xdead.beef/",  // hex digits in a name
		"http://example.com./", // a fully qualified name
	} {
		u, err := CheckURL(raw)
		if err != nil {
			t.Errorf("CheckURL(%q) = %v", raw, err)
			continue
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Errorf("CheckURL(%q).Scheme = %q", raw, u.Scheme)
		}
	}
	for raw, want := range map[string]string{
		"":                                  msgEmpty,
		"file:///etc/passwd":                msgScheme,
		"gopher://127.0.0.1:70/_SECRET":     msgScheme,
		"ftp://example.com/":                msgScheme,
		"javascript:alert(1)":               msgScheme,
		"xoxb-SECRET:token":                 msgScheme,
		"hooks.slack.com/services/SECRET":   msgScheme,
		"//example.com/SECRET":              msgScheme,
		"http://user:SECRET@example.com/":   msgUserinfo,
		"http://SECRET@example.com/":        msgUserinfo,
		"http://@example.com/":              msgUserinfo,
		"http://example.com:0/SECRET":       msgPort,
		"http://example.com:65536/":         msgPort,
		"http://example.com:00000/":         msgPort,
		"http://example.com:9999999999999/": msgPort,
		"http:///SECRET":                    msgNoHost,
		"http://:80/SECRET":                 msgNoHost,
		"http:SECRET":                       msgNoHost,
		"http://example.com:x/SECRET":       msgInvalid,
		"http://[::1/SECRET":                msgInvalid,
		"http://exa mple.com/?SECRET":       msgInvalid,
		" http://example.com/SECRET":        msgInvalid,
		"http://example.com/%zzSECRET":      msgInvalid,
		// Every spelling inet_aton and browsers read as 127.0.0.1 that Go
		// would look up as a name.
		"http://2130706433/SECRET":       msgNumeric,
		"http://0x7f000001/SECRET":       msgNumeric,
		"http://0X7F000001:80/SECRET":    msgNumeric,
		"http://0177.0.0.1/SECRET":       msgNumeric,
		"http://0x7f.0.0.1/SECRET":       msgNumeric,
		"http://0x7f.0x0.0x0.0x1/SECRET": msgNumeric,
		"http://127.1/SECRET":            msgNumeric,
		"http://127.0.1/SECRET":          msgNumeric,
		"http://127.000.000.001/SECRET":  msgNumeric,
		"http://127.0.0.01/SECRET":       msgNumeric,
		"http://127.0.0.1./SECRET":       msgNumeric,
		"http://1.2.3.256/SECRET":        msgNumeric,
		"http://1.2.3.4.5/SECRET":        msgNumeric,
		"http://0x/SECRET":               msgNumeric,
		"http://internal.0x7f/SECRET":    msgNumeric,
		"http://example.123/SECRET":      msgNumeric,
	} {
		_, err := CheckURL(raw)
		if err == nil || err.Error() != want {
			t.Errorf("CheckURL(%q) = %v, want %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("CheckURL(%q) quotes the URL: %v", raw, err)
		}
	}
}
