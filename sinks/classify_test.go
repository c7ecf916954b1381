package sinks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// TestEveryKindClassifiesStatuses runs every registered kind against a
// server that answers every request with one status, and checks the
// shared classification: 429 and 5xx retry (429 and 503 with their
// Retry-After as a floor), other 4xx are permanent.
func TestEveryKindClassifiesStatuses(t *testing.T) {
	cases := []struct {
		status    int
		permanent bool
	}{
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusNotFound, true},
		{http.StatusUnprocessableEntity, true},
	}
	for _, kind := range Kinds() {
		if kind == "log" {
			continue // no HTTP
		}
		src, err := os.ReadFile("testdata/" + kind + "/example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			t.Run(kind+"/"+http.StatusText(c.status), func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					if c.status == http.StatusTooManyRequests || c.status == http.StatusServiceUnavailable {
						w.Header().Set("Retry-After", "7")
					}
					w.WriteHeader(c.status)
					w.Write([]byte(`{"error":"scripted"}`))
				}))
				defer srv.Close()
				n := nodeWith(t, string(src), anyEnv(srv.URL+"/services/T0/B0/x", "xoxb-test"))
				pointAt(n, srv.URL)
				s, err := testRegistry().Build(kind, "s", n)
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err = s.Deliver(ctx, delivery(requiredFields(kind)))
				if err == nil {
					t.Fatalf("Deliver against %d succeeded", c.status)
				}
				if got := router.IsPermanent(err); got != c.permanent {
					t.Errorf("IsPermanent(%v) = %v, want %v", err, got, c.permanent)
				}
				// slack-go keeps no headers of a 503 (Slack's Web API
				// paces with 429 ratelimited, checked here).
				slack503 := kind == "slack" && c.status == http.StatusServiceUnavailable
				if (c.status == http.StatusTooManyRequests || c.status == http.StatusServiceUnavailable) && !slack503 {
					// Backpressure: the worker holds the sink and spends no
					// attempt on a RetryAfterError.
					var ra *router.RetryAfterError
					if !errors.As(err, &ra) || ra.After < 7*time.Second || ra.Local {
						t.Errorf("%d with Retry-After 7: %v, want a RetryAfterError of at least 7s", c.status, err)
					}
				}
			})
		}
	}
}
