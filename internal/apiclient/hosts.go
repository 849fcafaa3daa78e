package apiclient

import (
	"context"
	"net/http"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ListHosts returns every host, in the server's order.
func (c *Client) ListHosts(ctx context.Context) ([]wire.Host, error) {
	return list[wire.Host](ctx, c, "/v1/hosts")
}

// GetHost returns the host whose id or name is ref.
func (c *Client) GetHost(ctx context.Context, ref string) (*wire.Host, error) {
	return call[wire.Host](ctx, c, http.MethodGet, "/v1/hosts/"+seg(ref), nil)
}

// SetHost sets or clears an operator's capacity limit on the host and returns it.
func (c *Client) SetHost(ctx context.Context, ref string, u wire.HostUpdate) (*wire.Host, error) {
	return call[wire.Host](ctx, c, http.MethodPatch, "/v1/hosts/"+seg(ref), u)
}

// CreateHostToken creates a host record and a one-time enrollment token for it.
func (c *Client) CreateHostToken(ctx context.Context, req wire.TokenRequest) (*wire.TokenResponse, error) {
	return call[wire.TokenResponse](ctx, c, http.MethodPost, "/v1/hosts/tokens", req)
}

// RevokeHost revokes the host's certificates and closes its tunnel; the record stays.
func (c *Client) RevokeHost(ctx context.Context, ref string) (*wire.Host, error) {
	return call[wire.Host](ctx, c, http.MethodPost, "/v1/hosts/"+seg(ref)+"/revoke", nil)
}

// RemoveHost deletes the host record.
func (c *Client) RemoveHost(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/v1/hosts/"+seg(ref), nil, nil)
}

// call sends in and decodes a T: the shape of every single-object endpoint.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// list GETs a JSON array; it never returns a nil slice on success, so an empty list prints as
// [] rather than null.
func list[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var out []T
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// DrainHost marks the host as draining, so pmd places no new bots on it, and returns it.
func (c *Client) DrainHost(ctx context.Context, ref string) (*wire.Host, error) {
	return call[wire.Host](ctx, c, http.MethodPost, "/v1/hosts/"+seg(ref)+"/drain", nil)
}

// UndrainHost lets pmd place bots on the host again and returns it.
func (c *Client) UndrainHost(ctx context.Context, ref string) (*wire.Host, error) {
	return call[wire.Host](ctx, c, http.MethodPost, "/v1/hosts/"+seg(ref)+"/undrain", nil)
}
