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

// callPrinting calls the admin API and, with asJSON, prints its answer
// as it came (printed true); otherwise it decodes the answer into v for
// the caller to print.
func callPrinting(ctx context.Context, c *adminClient, method, path string, body any, asJSON bool, w io.Writer, v any) (printed bool, err error) {
	var raw json.RawMessage
	if err := c.Do(ctx, method, path, body, &raw); err != nil {
		return false, err
	}
	if asJSON {
		_, err := fmt.Fprintln(w, string(raw))
		return true, err
	}
	return false, json.Unmarshal(raw, v)
}

// listPrinting reads a listing ({"items": […]}) and, with asJSON, prints
// its items as a JSON array (printed true; [] rather than null, for jq
// and the like); otherwise it returns them for the caller to print.
func listPrinting(ctx context.Context, c *adminClient, path string, asJSON bool, w io.Writer) (items []json.RawMessage, printed bool, err error) {
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := c.Do(ctx, http.MethodGet, path, nil, &page); err != nil {
		return nil, false, err
	}
	if !asJSON {
		return page.Items, false, nil
	}
	if page.Items == nil {
		page.Items = []json.RawMessage{}
	}
	return nil, true, json.NewEncoder(w).Encode(page.Items)
}
