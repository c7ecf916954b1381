package dispatch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

func TestParseMasterKey(t *testing.T) {
	if k, err := ParseMasterKey("  "); k != nil || err != nil {
		t.Errorf("empty: %v, %v; want nil, nil", k, err)
	}
	short := "short-master-key-CANARY"
	if _, err := ParseMasterKey(short); err == nil || strings.Contains(err.Error(), short) {
		t.Errorf("short: %v; want an error that does not quote the value", err)
	}
	long := strings.Repeat("m", MinMasterKeyLen) + "\n"
	if k, err := ParseMasterKey(long); err != nil || string(k) != strings.TrimSpace(long) {
		t.Errorf("long: %q, %v", k, err)
	}
}

func TestSealOpen(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSealer([]byte(strings.Repeat("a", 32)))
	if err != nil || s == nil {
		t.Fatalf("newSealer: %v", err)
	}
	sealed, err := s.seal("audit", "k_1", priv)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	if bytes.Contains(sealed, der[len(der)-64:]) || bytes.Contains(sealed, priv.D.Bytes()[:32]) {
		t.Fatal("the sealed key holds the private key in clear")
	}
	again, _ := s.seal("audit", "k_1", priv)
	if bytes.Equal(sealed, again) {
		t.Error("sealing twice gave the same bytes: the nonce is not random")
	}
	got, err := s.open("audit", "k_1", sealed)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("open: %v", err)
	}
	// Bound to its row: moved to another sink or key id, it does not open.
	for _, c := range [][2]string{{"other", "k_1"}, {"audit", "k_2"}} {
		if _, err := s.open(c[0], c[1], sealed); !errors.Is(err, errKeyUnreadable) {
			t.Errorf("open as %v: %v, want errKeyUnreadable", c, err)
		}
	}
	other, _ := newSealer([]byte(strings.Repeat("b", 32)))
	if _, err := other.open("audit", "k_1", sealed); !errors.Is(err, errKeyUnreadable) {
		t.Errorf("open under another master key: %v, want errKeyUnreadable", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := s.open("audit", "k_1", tampered); !errors.Is(err, errKeyUnreadable) {
		t.Errorf("open a tampered key: %v", err)
	}
	for _, bad := range [][]byte{nil, {sealVersion}, append([]byte{9}, sealed[1:]...)} {
		if _, err := s.open("audit", "k_1", bad); err == nil {
			t.Errorf("open %x: no error", bad)
		}
	}
	if s, err := newSealer(nil); s != nil || err != nil {
		t.Errorf("newSealer(nil) = %v, %v; want nil, nil", s, err)
	}
}

// keyStore counts SigningKeys reads; the rest of Store is not used.
type keyStore struct {
	router.Store
	reads int
	keys  []router.SigningKey
	err   error
}

func (s *keyStore) SigningKeys(context.Context, string) ([]router.SigningKey, error) {
	s.reads++
	return s.keys, s.err
}

func TestKeyringCaches(t *testing.T) {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	sl, _ := newSealer([]byte(strings.Repeat("a", 32)))
	sealed, _ := sl.seal("s", "k1", priv)
	st := &keyStore{}
	k := newKeyring(st, sl)
	ctx := context.Background()

	if _, _, err := k.get(ctx, "s"); !errors.Is(err, errNoSigningKey) {
		t.Fatalf("no key: %v", err)
	}
	if !k.waiting("s") || k.waiting("other") {
		t.Error("waiting: want true for the sink known to have no key, false for one never read")
	}
	k.get(ctx, "s")
	if st.reads != 1 {
		t.Errorf("%d store reads, want the answer cached", st.reads)
	}
	st.keys = []router.SigningKey{{Sink: "s", ID: "k1", SealedPrivate: sealed, CreatedAt: time.Now()}}
	k.invalidate("s")
	if k.waiting("s") {
		t.Error("still waiting after invalidate")
	}
	id, got, err := k.get(ctx, "s")
	if err != nil || id != "k1" || !got.Equal(priv) {
		t.Fatalf("get = %s, %v", id, err)
	}
	// Store errors are not cached: the next attempt asks again.
	k.invalidate("s")
	st.err = errors.New("store down")
	if _, _, err := k.get(ctx, "s"); err == nil {
		t.Fatal("store error swallowed")
	}
	st.err = nil
	if _, _, err := k.get(ctx, "s"); err != nil {
		t.Fatalf("after the store came back: %v", err)
	}
	// Without a master key nothing is read, and the sink waits.
	nk := newKeyring(st, nil)
	if _, _, err := nk.get(ctx, "s"); !errors.Is(err, errNoMasterKey) || !nk.waiting("s") {
		t.Errorf("no master key: %v", err)
	}
}
