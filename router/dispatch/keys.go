package dispatch

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hookroute/hookroute/router"
)

// Outbound signing keys (README: Security, secured outbound webhooks): an http sink with secured: true
// signs what it sends with the oldest of its (at most two) RSA keys, which
// the key API generates. The private halves are sealed with AES-256-GCM
// under a key derived from the master key (HOOKROUTE_MASTER_KEY) before
// they reach the store, and are opened only in memory, to sign.

// MinMasterKeyLen is the shortest master key ParseMasterKey accepts: the
// key is used as given (HKDF extracts from it), so its strength is its
// length.
const MinMasterKeyLen = 32

// ParseMasterKey checks the value of HOOKROUTE_MASTER_KEY. An empty value
// gives nil (no master key: the key API answers 503 and secured sinks
// cannot sign); a value shorter than MinMasterKeyLen after trimming white
// space is an error, which never quotes the value.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, nil
	case len(s) < MinMasterKeyLen:
		return nil, fmt.Errorf("HOOKROUTE_MASTER_KEY is %d characters, want at least %d (e.g. the output of: openssl rand -base64 32)", len(s), MinMasterKeyLen)
	}
	return []byte(s), nil
}

// sealVersion is the first byte of a sealed key, so that the format (KDF,
// cipher) can change later without guessing.
const sealVersion = 1

// sealInfo binds the derived key to its use: the same master key could
// serve other purposes later without its derived keys colliding.
const sealInfo = "hookroute outbound signing keys v1"

// sealer seals private keys under the master key.
type sealer struct{ aead cipher.AEAD }

// newSealer derives the AES-256 key from master with HKDF-SHA256; nil
// master gives a nil sealer.
func newSealer(master []byte) (*sealer, error) {
	if len(master) == 0 {
		return nil, nil
	}
	key, err := hkdf.Key(sha256.New, master, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("derive the sealing key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("derive the sealing key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// sealAAD ties a sealed key to its row: a sealed blob copied to another
// sink or key id does not open.
func sealAAD(sink, keyID string) []byte {
	return []byte("hookroute signing key\x00" + sink + "\x00" + keyID)
}

// seal returns version || nonce || AES-GCM(PKCS#8 DER of priv).
func (s *sealer) seal(sink, keyID string, priv *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, errors.New("seal signing key: cannot encode it")
	}
	defer clear(der)
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal signing key: %w", err)
	}
	out := make([]byte, 0, 1+len(nonce)+len(der)+s.aead.Overhead())
	out = append(append(out, sealVersion), nonce...)
	return s.aead.Seal(out, nonce, der, sealAAD(sink, keyID)), nil
}

// errKeyUnreadable: the sealed key does not open. The usual cause is a
// master key other than the one it was sealed with.
var errKeyUnreadable = errors.New("the signing key cannot be decrypted: HOOKROUTE_MASTER_KEY differs from the one it was sealed with (restore it, or generate a new key and delete this one)")

// open reverses seal. Its errors never carry key material.
func (s *sealer) open(sink, keyID string, sealed []byte) (*rsa.PrivateKey, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("the signing key is stored in an unknown format")
	}
	der, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealAAD(sink, keyID))
	if err != nil {
		return nil, errKeyUnreadable
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("the signing key decrypts but does not parse")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the signing key is not an RSA key")
	}
	return rk, nil
}

// Why a secured sink cannot sign; the worker logs these.
var (
	errNoMasterKey  = errors.New("HOOKROUTE_MASTER_KEY is not set, so no signing key can be opened")
	errNoSigningKey = errors.New("the sink has no signing key yet")
)

// keyRefresh is how long a replica trusts what it read of a sink's keys:
// a key created or deleted through another replica is seen within it. Keys
// created or deleted through this one are seen at once.
const keyRefresh = 5 * time.Second

// unsignedWait is how long a delivery to a secured sink without a usable
// key is put back for, and how often an idle worker of such a sink looks
// at its cached key state. Claims stay rare whatever it is (the cache
// holds "no key" for keyRefresh); it bounds how soon deliveries go out
// once a key exists.
const unsignedWait = time.Second

// keyring caches each secured sink's signing key (the oldest), opened.
type keyring struct {
	store  router.Store
	sealer *sealer // nil without a master key

	mu  sync.Mutex
	m   map[string]*ringEntry
	gen map[string]uint64 // bumped by invalidate, so a read begun before it is not cached
}

type ringEntry struct {
	id  string
	key *rsa.PrivateKey // nil when err says why
	err error
	at  time.Time // wall clock, not the router's (tests freeze that)
}

func newKeyring(store router.Store, s *sealer) *keyring {
	return &keyring{store: store, sealer: s, m: map[string]*ringEntry{}, gen: map[string]uint64{}}
}

// get returns the key sink signs with and its id. Store errors are not
// cached (the next attempt asks again); "no key" and "cannot open" are,
// for keyRefresh.
func (k *keyring) get(ctx context.Context, sink string) (string, *rsa.PrivateKey, error) {
	k.mu.Lock()
	if e := k.m[sink]; e != nil && time.Since(e.at) < keyRefresh {
		k.mu.Unlock()
		return e.id, e.key, e.err
	}
	gen := k.gen[sink]
	k.mu.Unlock()
	e := &ringEntry{at: time.Now()}
	if k.sealer == nil {
		e.err = errNoMasterKey
	} else {
		ks, err := k.store.SigningKeys(ctx, sink)
		if err != nil {
			return "", nil, fmt.Errorf("read signing keys: %w", err)
		}
		if len(ks) == 0 {
			e.err = errNoSigningKey
		} else {
			e.id = ks[0].ID
			e.key, e.err = k.sealer.open(sink, ks[0].ID, ks[0].SealedPrivate)
			if e.err != nil {
				e.err = fmt.Errorf("key %s: %w", ks[0].ID, e.err)
			}
		}
	}
	k.mu.Lock()
	if k.gen[sink] == gen {
		k.m[sink] = e
	}
	k.mu.Unlock()
	return e.id, e.key, e.err
}

// waiting reports whether sink is known, as of less than keyRefresh ago,
// to have no usable key: its workers then do not claim, so a backlog is
// not claimed and put back over and over.
func (k *keyring) waiting(sink string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.m[sink]
	return e != nil && e.err != nil && time.Since(e.at) < keyRefresh
}

// invalidate forgets what is known of sink's keys.
func (k *keyring) invalidate(sink string) {
	k.mu.Lock()
	k.gen[sink]++
	delete(k.m, sink)
	k.mu.Unlock()
}

// signingKey fetches the key for a claimed delivery to a secured sink. When
// there is none it can use, the delivery is put back to wait, without an
// attempt: an unsigned request would be refused by a receiver that
// checks, and one that does not check should not be taught to accept it.
func (r *Router) signingKey(c *router.Claimed) (*rsa.PrivateKey, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, key, err := r.keys.get(ctx, c.Sink)
	if err == nil {
		return key, true
	}
	r.metrics.unsignedWaiting(c.Sink)
	hint := "generate a key: hookroute keys generate --sink " + c.Sink
	switch {
	case errors.Is(err, errNoMasterKey):
		hint = "set HOOKROUTE_MASTER_KEY and restart, then generate a key: hookroute keys generate --sink " + c.Sink
	case !errors.Is(err, errNoSigningKey):
		hint = "see reason"
	}
	r.logs.Log(r.log, r.now(), slog.LevelWarn, "unsigned:"+c.Sink,
		"delivery waits: its sink is secured and has no usable signing key",
		"sink", c.Sink, "delivery_id", c.ID, "reason", err.Error(), "hint", hint)
	if err := r.store.Postpone(ctx, c.ID, r.owner, r.now().Add(unsignedWait), ""); err != nil && !errors.Is(err, router.ErrLeaseLost) {
		r.logs.Log(r.log, r.now(), slog.LevelError, "postpone:"+c.Sink, "delivery: postpone", "sink", c.Sink, "delivery_id", c.ID, "err", err)
	}
	return nil, false
}
