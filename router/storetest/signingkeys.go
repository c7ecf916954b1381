package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hookroute/hookroute/router"
)

// Signing keys: the store keeps at most router.MaxSigningKeys per sink,
// lists them oldest first (CreatedAt, then ID), and keeps the sealed
// private half byte for byte (it is binary: a nonce and a ciphertext).

func (e *env) createKey(sink, id string, at time.Time) error {
	return e.s.CreateSigningKey(e.ctx, sink, id, []byte("-----BEGIN PUBLIC KEY-----\n"+id+"\n-----END PUBLIC KEY-----\n"), sealedOf(id), at)
}

// sealedOf stands for a sealed private key: binary, with NUL and high
// bytes, as AES-GCM output is.
func sealedOf(id string) []byte { return append([]byte{1, 0, 0xff, 0x80}, id...) }

func (e *env) keyIDs(sink string) []string {
	e.Helper()
	ks, err := e.s.SigningKeys(e.ctx, sink)
	if err != nil {
		e.Fatalf("SigningKeys(%s): %v", sink, err)
	}
	out := []string{}
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

// wantKeyIDs checks the ids sink lists, as fmt prints them ("[k1 k2]").
func (e *env) wantKeyIDs(what, sink, want string) {
	e.Helper()
	if got := fmt.Sprint(e.keyIDs(sink)); got != want {
		e.Errorf("%s: %s, want %s", what, got, want)
	}
}

func (e *env) mustCreateKey(sink, id string, at time.Time) {
	e.Helper()
	if err := e.createKey(sink, id, at); err != nil {
		e.Fatalf("CreateSigningKey(%s, %s): %v", sink, id, err)
	}
}

func testSigningKeys(e *env) {
	a, b, c := e.n("sink-a"), e.n("sink-b"), e.n("sink-c")
	if ids := e.keyIDs(a); len(ids) != 0 {
		e.Fatalf("a sink without keys lists %v", ids)
	}
	// Created out of order: the listing is by time, not by insertion.
	e.mustCreateKey(a, "k2", t0.Add(time.Second))
	e.mustCreateKey(a, "k1", t0)
	ks, err := e.s.SigningKeys(e.ctx, a)
	if err != nil || len(ks) != 2 {
		e.Fatalf("SigningKeys = %d keys, %v; want 2", len(ks), err)
	}
	k := ks[0]
	if k.ID != "k1" || k.Sink != a || !k.CreatedAt.Equal(t0) || !bytes.Equal(k.SealedPrivate, sealedOf("k1")) ||
		!bytes.Contains(k.PublicPEM, []byte("\nk1\n")) {
		e.Errorf("oldest key = %+v, want k1 created at %v with its bytes intact", k, t0)
	}
	if ks[1].ID != "k2" || !ks[1].CreatedAt.Equal(t0.Add(time.Second)) {
		e.Errorf("second key = %s at %v, want k2 at %v", ks[1].ID, ks[1].CreatedAt, t0.Add(time.Second))
	}
	if err := e.createKey(a, "k3", t0.Add(2*time.Second)); !errors.Is(err, router.ErrKeyLimit) {
		e.Errorf("a third key: %v, want ErrKeyLimit", err)
	}
	e.wantKeyIDs("after a refused third key", a, "[k1 k2]")
	// The limit is per sink.
	e.mustCreateKey(b, "k1", t0)
	e.wantKeyIDs("sink b", b, "[k1]")
	// Ties in CreatedAt are broken by ID.
	e.mustCreateKey(c, "kb", t0)
	e.mustCreateKey(c, "ka", t0)
	e.wantKeyIDs("same CreatedAt", c, "[ka kb]")
	checkKeyRotation(e, a, b, c)
}

// checkKeyRotation rotates sink a's keys, k1 and k2: the old key goes, the
// new one signs, a successor fits. Sinks b (k1) and c (ka, kb) are
// bystanders.
func checkKeyRotation(e *env, a, b, c string) {
	if err := e.s.DeleteSigningKey(e.ctx, a, "k1"); err != nil {
		e.Fatalf("DeleteSigningKey: %v", err)
	}
	e.wantKeyIDs("after deleting k1", a, "[k2]")
	if err := e.s.DeleteSigningKey(e.ctx, a, "k1"); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("deleting k1 again: %v, want ErrNotFound", err)
	}
	if err := e.s.DeleteSigningKey(e.ctx, c, "k2"); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("deleting another sink's key: %v, want ErrNotFound", err)
	}
	e.mustCreateKey(a, "k3", t0.Add(3*time.Second))
	e.wantKeyIDs("after rotation", a, "[k2 k3]")
	e.wantKeyIDs("sink b after a's rotation", b, "[k1]")
}

// testSigningKeyRace: callers racing to add keys to one sink never get
// it past the limit.
func testSigningKeyRace(e *env) {
	sink := e.n("sink")
	const n = 8
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		created, limits int
		others          []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.createKey(sink, fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, router.ErrKeyLimit):
				limits++
			default:
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	if created != router.MaxSigningKeys || limits != n-router.MaxSigningKeys || len(others) > 0 {
		e.Errorf("%d racing creates: %d created, %d refused, errors %v; want %d created, the rest ErrKeyLimit",
			n, created, limits, others, router.MaxSigningKeys)
	}
	if ids := e.keyIDs(sink); len(ids) != router.MaxSigningKeys {
		e.Errorf("the sink holds %v, want %d keys", ids, router.MaxSigningKeys)
	}
}
