package apiclient

import (
	"context"
	"net/http"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// CreateAdmin issues an admin certificate for an operator. The answer holds its private key,
// which pmd does not keep: it is the only copy.
func (c *Client) CreateAdmin(ctx context.Context, req wire.AdminRequest) (*wire.AdminBundle, error) {
	return call[wire.AdminBundle](ctx, c, http.MethodPost, "/v1/admins", req)
}

// ListAdmins returns every admin certificate.
func (c *Client) ListAdmins(ctx context.Context) ([]wire.Admin, error) {
	return list[wire.Admin](ctx, c, "/v1/admins")
}

// RevokeAdmin revokes every certificate of the operator called name; pmd refuses to revoke the
// last valid admin certificate.
func (c *Client) RevokeAdmin(ctx context.Context, name string) (*wire.AdminRevocation, error) {
	return call[wire.AdminRevocation](ctx, c, http.MethodPost, "/v1/admins/"+seg(name)+"/revoke", nil)
}
