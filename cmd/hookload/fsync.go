package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FsyncResult is the fsync probe's answer.
type FsyncResult struct {
	Dir     string  `json:"dir"`
	N       int     `json:"n"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	SerialS float64 `json:"serial_per_s"` // commits per second, one at a time
}

// cmdFsync appends 4 KiB and fdatasyncs, n times, in a temporary file in
// dir: what one SQLite WAL commit with synchronous=FULL costs at least.
func cmdFsync(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fsync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", os.TempDir(), "`directory` on the file system to probe")
	n := fs.Int("n", 500, "write+fdatasync pairs")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f, err := os.CreateTemp(*dir, "hookload-fsync-*")
	if err != nil {
		fmt.Fprintln(stderr, "hookload fsync:", err)
		return 1
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	ds := make([]time.Duration, 0, *n)
	start := time.Now()
	for range *n {
		t := time.Now()
		if _, err := f.Write(page); err != nil {
			fmt.Fprintln(stderr, "hookload fsync:", err)
			return 1
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			fmt.Fprintln(stderr, "hookload fsync:", err)
			return 1
		}
		ds = append(ds, time.Since(t))
	}
	total := time.Since(start)
	l := latencies(ds)
	abs, _ := filepath.Abs(*dir)
	r := FsyncResult{Dir: abs, N: *n, P50Ms: l.P50, P99Ms: l.P99, MaxMs: l.Max, SerialS: float64(*n) / total.Seconds()}
	if *asJSON {
		b, _ := json.Marshal(r)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintf(stdout, "fsync probe (%s, 4 KiB write + fdatasync ×%d): p50 %.3fms p99 %.3fms max %.3fms, %.0f/s serial\n",
		r.Dir, r.N, r.P50Ms, r.P99Ms, r.MaxMs, r.SerialS)
	return 0
}
