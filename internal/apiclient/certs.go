package apiclient

import (
	"context"
	"net/http"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ListCerts returns every certificate pmd has issued.
func (c *Client) ListCerts(ctx context.Context) ([]wire.Certificate, error) {
	return list[wire.Certificate](ctx, c, "/v1/certs")
}

// RevokeCert revokes the certificate with the given serial.
func (c *Client) RevokeCert(ctx context.Context, serial string) (*wire.Certificate, error) {
	return call[wire.Certificate](ctx, c, http.MethodPost, "/v1/certs/"+seg(serial)+"/revoke", nil)
}
