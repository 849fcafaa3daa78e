// Package apiclient is the Go client of pmd's admin API: JSON over HTTPS with mutual TLS.
//
// Every method takes a context first and returns a typed result, a *wire.Error for a non-2xx
// answer, or a transport error. IsAuth tells whether an error means the server did not accept
// our credentials, wherever that was decided (HTTP status or TLS handshake).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// maxResponseBytes bounds a success body; the admin API never sends anything close to it.
const maxResponseBytes = 32 << 20

// Client talks to one pmd admin listener. It is safe for concurrent use.
type Client struct {
	base      string // "https://host:port", no trailing slash
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each request, from dialling to reading the body; zero means no bound.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.http.Timeout = d } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the context's server, authenticating with its admin certificate.
// It fails if the context's TLS material is unusable; it does not contact the server.
func New(cc *ctlconfig.Context, opts ...Option) (*Client, error) {
	tlsConf, err := cc.TLSConfig()
	if err != nil {
		return nil, err
	}
	base, err := baseURL(cc.Server)
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", cc.Name, err)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Client{base: base, http: &http.Client{Transport: tr}, userAgent: "pmctl"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// baseURL accepts "host:port" (the config's form) or "https://host:port".
func baseURL(server string) (string, error) {
	s := server
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("server %q: %w", server, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("server %q: only https is supported", server)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("server %q: want host:port", server)
	}
	return "https://" + u.Host, nil
}

// seg escapes one path segment (a host name, id or serial chosen by a user).
func seg(s string) string { return url.PathEscape(s) }

// do is the core of every method: it sends in as JSON (when not nil) to path (already escaped,
// may carry a query), and decodes a 2xx body into out (when not nil). A non-2xx answer becomes
// a *wire.Error; a transport failure is wrapped with the method and path.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	began := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return wire.DecodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		// Over HTTP/2 a request cut by the client's timeout can end as a short body.
		if c.http.Timeout > 0 && time.Since(began) >= c.http.Timeout {
			return transportError(method, path, context.DeadlineExceeded)
		}
		return fmt.Errorf("decode response to %s %s: %w", method, path, err)
	}
	return nil
}

// transportError turns what http.Client.Do returned into an error that reads well on one line
// and still answers errors.Is(err, context.Canceled) and IsAuth.
func transportError(method, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if alert, ok := rejectedAlert(err); ok {
		return &CertRejectedError{Alert: alert, Err: err}
	}
	var timeout interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &timeout) && timeout.Timeout() {
		return fmt.Errorf("%s %s: timed out: %w", method, path, err)
	}
	return fmt.Errorf("%s %s: %w", method, path, err)
}
