package router_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/egress"
)

// TestIsPermanent: marked errors, errors that say they are not retryable
// (the egress guard's refusal among them, however deeply wrapped) and
// nothing else.
func TestIsPermanent(t *testing.T) {
	blocked := &egress.BlockedError{Addr: netip.MustParseAddrPort("127.0.0.1:80"), Reason: "loopback"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{router.Permanent(errors.New("400")), true},
		{fmt.Errorf("post: %w", router.Permanent(errors.New("400"))), true},
		{fmt.Errorf("dial tcp: %w", blocked), true},
		{errors.New("503"), false},
		{&router.RetryAfterError{Err: errors.New("429"), After: 1}, false},
		{nil, false},
	} {
		if got := router.IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
