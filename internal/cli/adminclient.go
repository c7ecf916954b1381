package cli

// The HTTP client of the admin API that deliveries and keys share: the
// bearer token on every request, and the API's error bodies turned into
// errors. Where it calls and with which token is adminFlags.connect's
// choice (adminconfig.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// adminClient calls one router's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// newAdminClient returns a client for the admin API at base that sends
// token as its bearer token.
func newAdminClient(base, token string) *adminClient {
	return &adminClient{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}
}

// maxAnswer bounds what is read of an answer (a page of 1,000 deliveries
// fits comfortably).
const maxAnswer = 32 << 20

// Do sends a request with body as JSON (nil: none) and decodes a 2xx JSON
// answer into out (nil: the answer is not decoded, as for 204). A non-2xx
// answer becomes an error with its status and the API's error text.
func (c *adminClient) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return errors.New(resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
