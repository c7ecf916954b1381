package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hookroute/hookroute/sinks"
)

func cmdSend(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("send", "", stderr)
	source := fs.String("source", "", "source `name` in the config")
	keyFile := fs.String("key", "", "private key `PEM` to sign with (salesiq sources)")
	url := fs.String("url", "", "target `URL` (default: the source path on server.listen)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *source == "" {
		fmt.Fprintln(stderr, "usage: hookroute send --source NAME [--key PRIVATE.pem] [--url URL] FILE.json")
		return 2
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	rt, ok := loadConfig(*cfg, sinks.NewRegistry(), stderr)
	if !ok {
		return 1
	}
	src, ok := rt.Source(*source)
	if !ok {
		fmt.Fprintf(stderr, "hookroute send: no source %q in %s\n", *source, *cfg)
		return 1
	}
	target := *url
	if target == "" {
		target = "http://" + dialAddr(rt.Config.Server.Listen) + src.Path
	}
	h, err := src.SendHeaders(*keyFile, body)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute send:", err)
		return 1
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s\n", resp.Status, bytes.TrimSpace(out))
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

// dialAddr turns a listen address into one this host can connect to: a
// listener on every interface (an empty host, 0.0.0.0 or ::) is reached
// on loopback.
func dialAddr(listen string) string {
	host, port, _ := net.SplitHostPort(listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
