package loadgen

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

func TestSignMatchesCryptoRSA(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := Body(7, i)
		got, err := s.Sign(body)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256(body)
		want, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		if got != base64.StdEncoding.EncodeToString(want) {
			t.Fatalf("body %d: signature differs from crypto/rsa's", i)
		}
	}
}

func TestNewSignerRefusesSmallKeys(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(k); err == nil {
		t.Fatal("NewSigner accepted a 1024-bit key")
	}
}

func TestBodies(t *testing.T) {
	ids := map[string]bool{}
	for i := range 100 {
		b := Body(42, i)
		if len(b) < 1300 || len(b) > 1700 {
			t.Fatalf("body %d is %d bytes, want about 1.5 KB", i, len(b))
		}
		var m struct {
			Event     string `json:"event"`
			EntityID  string `json:"entity_id"`
			EventTime string `json:"event_time"`
			Entity    struct {
				Rating int `json:"rating"`
			} `json:"entity"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if m.Event != "conversation.rated" || m.Entity.Rating != 1 {
			t.Fatalf("body %d: event %q rating %d, want conversation.rated and 1 (sad)", i, m.Event, m.Entity.Rating)
		}
		id := m.Event + ":" + m.EntityID + ":" + m.EventTime
		if ids[id] {
			t.Fatalf("body %d repeats the dedup id %s", i, id)
		}
		ids[id] = true
	}
}

func TestPool(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Pool(k, 1, 10, 14, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 4 {
		t.Fatalf("got %d bodies, want 4", len(p))
	}
	for i, s := range p {
		if string(s.Body) != string(Body(1, 10+i)) {
			t.Fatalf("pool[%d] is not Body(1, %d)", i, 10+i)
		}
		sig, _ := base64.StdEncoding.DecodeString(s.Sig)
		d := sha256.Sum256(s.Body)
		if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig); err != nil {
			t.Fatalf("pool[%d]: %v", i, err)
		}
	}
}
