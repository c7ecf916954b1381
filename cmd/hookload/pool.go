package main

import (
	"bufio"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hookroute/hookroute/bench/loadgen"
)

// signed is one pre-signed request body.
type signed = loadgen.Signed

// parsePrivateKey reads a PKCS#1 or PKCS#8 RSA private key in PEM, as
// openssl genpkey/genrsa write them.
func parsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no RSA private key PEM block found")
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, not RSA", k)
			}
			return rk, nil
		}
	}
}

// parsePublicKey reads a PKIX ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY")
// RSA public key in PEM.
func parsePublicKey(data []byte) (*rsa.PublicKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no RSA public key PEM block found")
		}
		switch b.Type {
		case "RSA PUBLIC KEY":
			return x509.ParsePKCS1PublicKey(b.Bytes)
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			rk, ok := k.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("public key is %T, not RSA", k)
			}
			return rk, nil
		}
	}
}

func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// buildPool signs n bodies on every CPU the process may use.
func buildPool(k *rsa.PrivateKey, n int, salt int64, progress io.Writer) ([]signed, error) {
	return loadgen.Pool(k, salt, 0, n, progress)
}

// Pool file: a header line, then per body a uint32 length, the body, a
// uint16 length and the base64 signature.
const poolMagic = "hookload-pool v1\n"

func writePool(path string, pool []signed) error {
	return savePool(path, pool, false)
}

// savePool writes pool to path, or with appendTo adds it at the end of the
// pool file already there.
func savePool(path string, pool []signed, appendTo bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if !appendTo {
		w.WriteString(poolMagic)
	}
	var hdr [4]byte
	for _, p := range pool {
		binary.BigEndian.PutUint32(hdr[:], uint32(len(p.Body)))
		w.Write(hdr[:])
		w.Write(p.Body)
		binary.BigEndian.PutUint16(hdr[:2], uint16(len(p.Sig)))
		w.Write(hdr[:2])
		w.WriteString(p.Sig)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readPool(path string) ([]signed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(poolMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != poolMagic {
		return nil, fmt.Errorf("%s: not a hookload pool file", path)
	}
	var pool []signed
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			return pool, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: truncated: %w", path, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("%s: truncated: %w", path, err)
		}
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return nil, fmt.Errorf("%s: truncated: %w", path, err)
		}
		sig := make([]byte, binary.BigEndian.Uint16(hdr[:2]))
		if _, err := io.ReadFull(r, sig); err != nil {
			return nil, fmt.Errorf("%s: truncated: %w", path, err)
		}
		pool = append(pool, signed{Body: body, Sig: string(sig)})
	}
}

func cmdPool(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "RSA private key `PEM` to sign with")
	n := fs.Int("n", 20000, "number of bodies")
	out := fs.String("out", "", "pool `file` to write")
	salt := fs.Int64("salt", time.Now().UnixMilli()%1_000_000_000, "offset of entity_id and event_time (distinct pools never collide)")
	grow := fs.Bool("append", false, "grow the pool in FILE to N bodies, signing only the new ones (give the --salt FILE was made with)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *keyFile == "" || *out == "" || *n <= 0 {
		fmt.Fprintln(stderr, "usage: hookload pool --key PRIVATE.pem --n N --out FILE [--append --salt S]")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "hookload pool:", err)
		return 1
	}
	k, err := readPrivateKey(*keyFile)
	if err != nil {
		return fail(err)
	}
	// Growing signs bodies have to n of the same salted sequence, so the
	// pool stays free of duplicates; signing is what costs (milliseconds
	// a body), and a ladder needs more bodies at each step.
	have := 0
	if *grow {
		if old, err := readPool(*out); err == nil {
			have = len(old)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
	}
	if have >= *n {
		fmt.Fprintf(stdout, "hookload pool: %s already holds %d bodies\n", *out, have)
		return 0
	}
	pool, err := loadgen.Pool(k, *salt, have, *n, stderr)
	if err != nil {
		return fail(err)
	}
	if err := savePool(*out, pool, have > 0); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "hookload pool: %d bodies (%s bytes each) in %s\n", have+len(pool), sizeRange(pool), *out)
	return 0
}

func sizeRange(pool []signed) string {
	lo, hi := len(pool[0].Body), len(pool[0].Body)
	for _, p := range pool {
		lo, hi = min(lo, len(p.Body)), max(hi, len(p.Body))
	}
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}
