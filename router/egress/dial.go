package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
)

// ErrBlocked is what every refusal by the guard wraps: errors.Is(err,
// ErrBlocked) tells a blocked destination, which no retry will fix, from a
// network failure.
var ErrBlocked = errors.New("egress: blocked destination")

// BlockedError is the guard's refusal of one dial. Its text names the
// resolved address, never a URL or a host name (either may be a
// credential).
type BlockedError struct {
	// Addr is the address refused; invalid when the dialer passed
	// something that is not an IP and port.
	Addr netip.AddrPort
	// Reason names the blocked range, e.g. "loopback (6to4)".
	Reason string
}

// Error says which address was refused and how to allow it.
func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "destination is not an IP address and port; refused by egress guard"
	}
	return "destination " + e.Addr.String() + " is not allowed (private, loopback or link-local); allow it with egress.allow"
}

// Unwrap returns ErrBlocked.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

// Retryable is false: no retry makes a refused destination allowed. The
// router's IsPermanent reads it, so the domain needs no import of the
// guard.
func (e *BlockedError) Retryable() bool { return false }

// Control is a net.Dialer Control function: it refuses, with a
// *BlockedError, a connection to an address the guard does not allow. The
// address is the resolved IP and port the socket is about to connect to,
// so there is no window for DNS rebinding. Anything else — a network that
// is not TCP or UDP, an address that does not parse — is refused too.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") && !strings.HasPrefix(network, "udp") {
		return &BlockedError{Reason: "not an IP network"}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: "unparsable address"}
	}
	if !g.Allowed(ap.Addr()) {
		return &BlockedError{Addr: ap, Reason: blockReason(ap.Addr().WithZone(""))}
	}
	return nil
}

// DialContext dials like a net.Dialer with a 10 s connect timeout and 30 s
// keep-alives, every address it tries passing through Control.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if g == nil {
		g = defaultGuard
	}
	return g.dialer.DialContext(ctx, network, addr)
}

// Transport returns a clone of base (of http.DefaultTransport when nil)
// whose connections all go through DialContext. Its Proxy is nil, since a
// proxy would connect to the destination for us and the guard would only
// see the proxy; its DialTLS and DialTLSContext are cleared, since they
// would bypass DialContext for https (TLS runs over the guarded connection,
// configured by TLSClientConfig as usual), and so is Dial.
func (g *Guard) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			base = dt
		} else {
			base = &http.Transport{}
		}
	}
	t := base.Clone()
	t.Proxy = nil
	// The deprecated dialers are cleared too: DialContext takes priority
	// over them, but a dialer other than ours must not be left at all.
	t.Dial = nil    //lint:ignore SA1019 cleared, not used
	t.DialTLS = nil //lint:ignore SA1019 cleared, not used
	t.DialTLSContext = nil
	t.DialContext = g.DialContext
	return t
}
