// Package loadgen builds and signs the Zoho SalesIQ webhook bodies that
// cmd/hookload and the router benchmarks send: about 1.5 KB each, a
// conversation.rated event with a sad rating, each one distinct, signed as
// SalesIQ signs (base64 of RSA-SHA256 PKCS#1 v1.5 in x-siqsignature).
//
// It is test tooling: the signer skips crypto/rsa's constant-time code for
// speed, which is fine for throwaway keys and nothing else.
package loadgen

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"sync"
	"time"
)

// Header is the signature header SalesIQ sends.
const Header = "x-siqsignature"

// Signed is one pre-signed request body.
type Signed struct {
	Body []byte
	Sig  string // the x-siqsignature value
}

// Body i of a pool. entity_id and event_time both change with i (and with
// salt), so the router's dedup id (event:entity_id:event_time) differs per
// body; the rest is a realistic SalesIQ conversation.rated envelope with a
// sad rating, padded with fields SalesIQ sends to about 1.5 KB.
const bodyTemplate = `{"entity_type":"conversation","event":"conversation.rated","entity_id":"%[1]d","org_id":"55778119","app_id":40526000000002040,"attempt":1,"version":"1","event_time":"%[2]d","entity":{"id":"%[1]d","visitor_conversation_id":"%[3]d","reference_id":"%[3]d","status":"Ended","rating":1,"feedback":"Nobody answered my question about the refund for order %[3]d. I waited twenty minutes and the chat was closed.","question":"Hi, I would like to know when the refund for my cancelled order will reach my card.","department_id":"40526000000002023","app_id":"40526000000002040","opened_time":"%[4]d","attended_time":"%[5]d","end_time":"%[6]d","chat_status":{"state_key":"ended","state":4,"status_key":"closed","status_code":3},"supervisors":[],"participants":[{"type":"operator","id":"40526000000002001","name":"Patricia","email_id":"patricia@zylker.com","time":"%[5]d"}],"owner":{"type":"operator","id":"40526000000002001","name":"Patricia","email_id":"patricia@zylker.com"},"visitor":{"type":"contact","id":"30000000090034","name":"Tricia","email_id":"tricia@zylker.com","phone":"9043273469","ip":"203.0.113.27","browser":"Firefox","os":"Linux","country_code":"DE","city":"Berlin","language":"en","time_zone":"Europe/Berlin","channel":"website","landing_page":"https://www.zylker.com/orders/refunds?utm_source=newsletter&utm_medium=email"},"tags":["refund","orders"],"media_count":0}}`

// Body returns body i of the pool salted with salt: different salts give
// pools that never collide.
func Body(salt int64, i int) []byte {
	const baseEntity = 40526000001808033
	t := 1567065865617 + salt + int64(i) // epoch ms, distinct per body
	return fmt.Appendf(nil, bodyTemplate, baseEntity+salt+int64(i), t, 70000000+int64(i), t-900000, t-780000, t-60000)
}

// sha256DigestInfo is the DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// Signer makes PKCS#1 v1.5 SHA-256 signatures with the CRT over math/big.
//
// crypto/rsa's constant-time signing costs about 4 ms per RSA-2048
// signature on the 2-core benchmark machine, math/big about 2 ms, so a 40k
// pool takes half the time. Timing side channels do not matter for a
// throwaway benchmark key. PKCS#1 v1.5 signatures are deterministic, and
// every one is checked with rsa.VerifyPKCS1v15 (≈ 60 µs) before Sign returns
// it, so a wrong signature cannot slip into a pool.
type Signer struct {
	k            *rsa.PrivateKey
	p, q         *big.Int
	dp, dq, qinv *big.Int
	size         int
	std          bool // use crypto/rsa (not two primes)
}

// NewSigner returns a Signer for k, which must be valid and at least 2048
// bits (the router refuses smaller keys).
func NewSigner(k *rsa.PrivateKey) (*Signer, error) {
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("private key: %d bits; the router accepts 2048 and more", k.N.BitLen())
	}
	s := &Signer{k: k, size: k.Size()}
	if len(k.Primes) != 2 {
		s.std = true
		return s, nil
	}
	one := big.NewInt(1)
	s.p, s.q = k.Primes[0], k.Primes[1]
	s.dp = new(big.Int).Mod(k.D, new(big.Int).Sub(s.p, one))
	s.dq = new(big.Int).Mod(k.D, new(big.Int).Sub(s.q, one))
	if s.qinv = new(big.Int).ModInverse(s.q, s.p); s.qinv == nil {
		s.std = true
	}
	return s, nil
}

// Sign returns the standard-base64 x-siqsignature value for body.
func (s *Signer) Sign(body []byte) (string, error) {
	digest := sha256.Sum256(body)
	var sig []byte
	if s.std {
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, s.k, crypto.SHA256, digest[:]); err != nil {
			return "", err
		}
	} else {
		em := make([]byte, s.size) // 00 01 FF…FF 00 DigestInfo
		em[1] = 1
		tLen := len(sha256DigestInfo) + len(digest)
		for i := 2; i < s.size-tLen-1; i++ {
			em[i] = 0xff
		}
		copy(em[s.size-tLen:], sha256DigestInfo)
		copy(em[s.size-len(digest):], digest[:])
		m := new(big.Int).SetBytes(em)
		m1 := new(big.Int).Exp(m, s.dp, s.p)
		m2 := new(big.Int).Exp(m, s.dq, s.q)
		h := m1.Sub(m1, m2)
		h.Mul(h, s.qinv).Mod(h, s.p).Mul(h, s.q).Add(h, m2)
		sig = h.FillBytes(make([]byte, s.size))
	}
	if err := rsa.VerifyPKCS1v15(&s.k.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return "", fmt.Errorf("signature self-check failed: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Pool signs bodies [from, to) of the pool salted with salt on every CPU
// the process may use. progress, if not nil, hears about it every few
// seconds and at the end.
func Pool(k *rsa.PrivateKey, salt int64, from, to int, progress io.Writer) ([]Signed, error) {
	s, err := NewSigner(k)
	if err != nil {
		return nil, err
	}
	n := to - from
	if n <= 0 {
		return nil, nil
	}
	out := make([]Signed, n)
	workers := runtime.GOMAXPROCS(0)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		next     = make(chan int, workers)
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b := Body(salt, from+i)
				sig, err := s.Sign(b)
				if err != nil {
					once.Do(func() { firstErr = err })
					continue
				}
				out[i] = Signed{Body: b, Sig: sig}
			}
		}()
	}
	last := start
	for i := range n {
		next <- i
		if progress != nil && time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "loadgen: signed %d/%d bodies (%.0f/s)\n", i, n, float64(i)/time.Since(start).Seconds())
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if progress != nil {
		d := time.Since(start)
		fmt.Fprintf(progress, "loadgen: signed %d bodies in %.1fs (%.0f/s on %d CPUs, %d-byte bodies)\n",
			n, d.Seconds(), float64(n)/d.Seconds(), workers, len(out[0].Body))
	}
	return out, nil
}
