package sinks

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCertificatesAlwaysVerified: a server with a certificate from an
// unknown CA is refused, and accepted once the sink's ca_file holds that
// CA. There is no switch to skip verification.
func TestCertificatesAlwaysVerified(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	s := mustBuild(t, "http", "url: "+srv.URL+"/hook", nil)
	_, err := s.Deliver(context.Background(), delivery(map[string]string{"body": "{}"}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Deliver to an unknown CA = %v, want a certificate error", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustBuild(t, "http", "url: "+srv.URL+"/hook\nca_file: "+ca, nil)
	if _, err := s.Deliver(context.Background(), delivery(map[string]string{"body": "{}"})); err != nil {
		t.Fatalf("Deliver with the CA in ca_file: %v", err)
	}
	if _, err := build(t, "http", "url: "+srv.URL+"/hook\nca_file: /nonexistent/ca.pem", nil); err == nil {
		t.Fatal("a missing ca_file built")
	}
}
