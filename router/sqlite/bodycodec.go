package sqlite

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// Event bodies are stored compressed when that saves enough (see
// migrations/0010_body_codec.sql). Compression runs in the ingesting
// request's goroutine, with the rest of an ingest's encoding, so the
// committer only executes; bodies are read back only by claims and the
// admin API, since a delivery handed off at ingest keeps the body it came
// with.

// Body codecs, the values of events.body_codec.
const (
	codecNone    = 0
	codecDeflate = 1
)

// minCompress is the smallest body worth compressing: below it a row is
// small anyway, and DEFLATE's framing eats the gain.
const minCompress = 256

// maxInflated bounds what a stored body inflates to. The store compressed
// it from a body no larger than the router's max_body, so only a damaged
// file comes near it.
const maxInflated = 64 << 20

var (
	deflaters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level
		return w
	}}
	inflaters = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// encodeBody returns the bytes to store for body and their codec: the
// DEFLATE of body if that is at most seven eighths of it, else body.
func encodeBody(body []byte) ([]byte, int) {
	if len(body) < minCompress {
		return body, codecNone
	}
	var buf bytes.Buffer
	buf.Grow(len(body) / 2)
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(body); err != nil {
		return body, codecNone
	}
	if err := w.Close(); err != nil {
		return body, codecNone
	}
	if buf.Len() > len(body)-len(body)/8 {
		return body, codecNone
	}
	return buf.Bytes(), codecDeflate
}

// decodeBody returns the body stored as b with codec.
func decodeBody(b []byte, codec int64) ([]byte, error) {
	switch codec {
	case codecNone:
		return b, nil
	case codecDeflate:
	default:
		return nil, fmt.Errorf("body: unknown codec %d", codec)
	}
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(b), nil); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	out := bytes.NewBuffer(make([]byte, 0, 3*len(b)))
	n, err := io.Copy(out, io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if n > maxInflated {
		return nil, fmt.Errorf("body: inflates beyond %d bytes", maxInflated)
	}
	return out.Bytes(), nil
}
